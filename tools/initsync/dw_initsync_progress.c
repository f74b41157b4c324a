/*
 * What dw-initsync shows while it runs and when it ends.
 *
 * On a terminal (stderr is a tty) a progress thread redraws one line per map
 * about four times a second: a bar of rows done out of the estimate
 * (pg_class.reltuples, or count(*) for small tables), rows per second and the
 * time left.  Elsewhere (a log file, CI) it writes one line per running map
 * every LOG_EVERY_MS, and one when a map ends.  Messages (dw_initsync_say)
 * erase the bars, print, and the next redraw brings them back, so the two
 * never mix on screen.  At the end a summary table goes to stdout.
 */
#include "tools/initsync/dw_initsync.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_MS 250
#define LOG_EVERY_MS 5000
#define MAX_BAR_LINES 16

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int bar_lines;                /* lines of bars on screen below the cursor's line */
static bool tty_mode;
static const char *prog_name = "dw-initsync";

static pthread_t progress_thread;
static bool progress_running;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static bool stop_requested;

/* ---------------------------------------------------------------- messages */

static void erase_bars(void)
{
    if (bar_lines > 0) {
        fprintf(stderr, "\033[%dA\r\033[J", bar_lines);
        bar_lines = 0;
    }
}

void dw_initsync_say(const char *level, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&out_lock);
    erase_bars();
    fprintf(stderr, "%s: %s: ", prog_name, level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&out_lock);
}

void dw_initsync_say_error(const char *level, const struct dw_error *err)
{
    dw_initsync_say(level, "%s", err->message[0] ? err->message : "unknown error");
    if (err->detail[0])
        dw_initsync_say("detail", "%s", err->detail);
    if (err->context[0])
        dw_initsync_say("context", "%s", err->context);
    if (err->hint[0])
        dw_initsync_say("hint", "%s", err->hint);
}

/* ---------------------------------------------------------------- numbers */

static double seconds_of(const struct dw_initsync_job *job)
{
    long long start = atomic_load(&job->started_ms), end = atomic_load(&job->ended_ms);

    if (!start)
        return 0;
    if (!end)
        end = dw_initsync_now_ms();
    return (double) (end - start) / 1000.0;
}

static const char *state_name(int state)
{
    switch (state) {
    case DW_INITSYNC_WAITING: return "not started";
    case DW_INITSYNC_RUNNING: return "copying";
    case DW_INITSYNC_DONE: return "done";
    case DW_INITSYNC_FAILED: return "failed";
    case DW_INITSYNC_INTERRUPTED: return "interrupted";
    case DW_INITSYNC_STOPPED: return "stopped";
    case DW_INITSYNC_SKIPPED: return "skipped";
    case DW_INITSYNC_FINISHED: return "finished";
    }
    return "?";
}

static void format_eta(char *buf, size_t size, double s)
{
    long t = (long) (s + 0.5);

    if (s < 0 || s > 360000)
        snprintf(buf, size, "--:--");
    else if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

/* "1234", "12.3k", "1.23M": counts that fit a progress line. */
static void human(char *buf, size_t size, double v)
{
    if (v < 0)
        snprintf(buf, size, "?");
    else if (v < 10000)
        snprintf(buf, size, "%.0f", v);
    else if (v < 1e6)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else if (v < 1e9)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else
        snprintf(buf, size, "%.2fG", v / 1e9);
}

static int name_width(const struct dw_initsync_run *run)
{
    size_t w = 8;

    for (size_t i = 0; i < run->njobs; i++)
        if (strlen(run->jobs[i].map->name) > w)
            w = strlen(run->jobs[i].map->name);
    return w > 24 ? 24 : (int) w;
}

/* One line about a job: "orders [#####-----]  45% 120.0k/265.0k rows  85.3k rows/s  ETA 0:02". */
static void job_line(const struct dw_initsync_run *run, const struct dw_initsync_job *job,
                     char *buf, size_t size, bool with_bar)
{
    int state = atomic_load(&job->state), nw = name_width(run);
    long long read = atomic_load(&job->nread), est = atomic_load(&job->estimate);
    long long done = job->before.read + read;
    double secs = seconds_of(job), rate = secs > 0 ? (double) read / secs : 0;
    char bar[32], eta[32], total[16], sofar[16], speed[16];
    size_t pos;

    if (state == DW_INITSYNC_WAITING) {
        snprintf(buf, size, "%-*.*s waiting", nw, nw, job->map->name);
        return;
    }
    if (state != DW_INITSYNC_RUNNING) {
        snprintf(buf, size, "%-*.*s %s, %lld rows in %.1f s", nw, nw, job->map->name,
                 state_name(state), read, secs);
        return;
    }
    if (est >= 0 && est < done)
        est = done;     /* rows inserted meanwhile, or a stale estimate */
    human(total, sizeof(total), (double) est);
    human(sofar, sizeof(sofar), (double) done);
    human(speed, sizeof(speed), rate);
    format_eta(eta, sizeof(eta), est > 0 && rate > 0 ? (double) (est - done) / rate : -1);
    pos = (size_t) snprintf(buf, size, "%-*.*s ", nw, nw, job->map->name);
    if (with_bar && pos < size) {
        int width = 16, filled = est > 0 ? (int) (width * (double) done / (double) est) : 0;

        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[width] = '\0';
        pos += (size_t) snprintf(buf + pos, size - pos, "[%s] ", bar);
    }
    if (pos < size)
        snprintf(buf + pos, size - pos, "%3d%% %s/%s rows  %s rows/s  ETA %s%s",
                 est > 0 ? (int) (100.0 * (double) done / (double) est) : 0, sofar, total, speed,
                 eta, run->opt.dry_run ? "  (dry run)" : "");
}

/* ---------------------------------------------------------------- the thread */

static int terminal_width(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 80;
}

static void draw_bars(const struct dw_initsync_run *run)
{
    int width = terminal_width(), lines = 0;
    char line[512];

    pthread_mutex_lock(&out_lock);
    erase_bars();
    for (size_t i = 0; i < run->njobs && lines < MAX_BAR_LINES; i++) {
        const struct dw_initsync_job *job = &run->jobs[i];

        if (run->njobs > MAX_BAR_LINES && atomic_load(&job->state) != DW_INITSYNC_RUNNING)
            continue;
        job_line(run, job, line, sizeof(line), true);
        if ((int) strlen(line) >= width)
            line[width - 1] = '\0';     /* a wrapped line would break the redraw */
        fprintf(stderr, "%s\n", line);
        lines++;
    }
    bar_lines = lines;
    fflush(stderr);
    pthread_mutex_unlock(&out_lock);
}

static void log_lines(const struct dw_initsync_run *run, int *last_state, bool periodic)
{
    char line[512];

    for (size_t i = 0; i < run->njobs; i++) {
        const struct dw_initsync_job *job = &run->jobs[i];
        int state = atomic_load(&job->state);

        if (state == DW_INITSYNC_RUNNING && periodic) {
            job_line(run, job, line, sizeof(line), false);
            dw_initsync_say("progress", "%s", line);
        } else if (state != last_state[i] && state != DW_INITSYNC_RUNNING &&
                   state != DW_INITSYNC_WAITING) {
            dw_initsync_say("progress", "table map \"%s\": %s, %lld rows in %.1f s",
                            job->map->name, state_name(state), atomic_load(&job->nread),
                            seconds_of(job));
        }
        last_state[i] = state;
    }
}

static void *progress_main(void *arg)
{
    struct dw_initsync_run *run = arg;
    int *last_state = calloc(run->njobs ? run->njobs : 1, sizeof(*last_state));
    int64_t next_log = dw_initsync_now_ms() + LOG_EVERY_MS;

    for (;;) {
        struct timespec until;
        bool stop;

        if (tty_mode) {
            draw_bars(run);
        } else if (last_state) {
            bool periodic = dw_initsync_now_ms() >= next_log;

            if (periodic)
                next_log = dw_initsync_now_ms() + LOG_EVERY_MS;
            log_lines(run, last_state, periodic);
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long) REDRAW_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&stop_lock);
        if (!stop_requested)
            pthread_cond_timedwait(&stop_cond, &stop_lock, &until);
        stop = stop_requested;
        pthread_mutex_unlock(&stop_lock);
        if (stop)
            break;
    }
    if (tty_mode)
        draw_bars(run);     /* the final state stays on screen */
    else if (last_state)
        log_lines(run, last_state, false);
    free(last_state);
    return NULL;
}

void dw_initsync_progress_start(struct dw_initsync_run *run)
{
    prog_name = run->prog;
    tty_mode = run->progress_tty;
    stop_requested = false;
    progress_running = pthread_create(&progress_thread, NULL, progress_main, run) == 0;
}

void dw_initsync_progress_stop(struct dw_initsync_run *run)
{
    (void) run;
    if (!progress_running)
        return;
    pthread_mutex_lock(&stop_lock);
    stop_requested = true;
    pthread_cond_broadcast(&stop_cond);
    pthread_mutex_unlock(&stop_lock);
    pthread_join(progress_thread, NULL);
    progress_running = false;
    pthread_mutex_lock(&out_lock);
    bar_lines = 0;      /* leave the last bars where they are */
    pthread_mutex_unlock(&out_lock);
}

/* ---------------------------------------------------------------- the summary */

void dw_initsync_summary(const struct dw_initsync_run *run)
{
    struct dw_initsync_counts total = {0, 0, 0, 0};
    double total_secs = 0;
    bool resume_hint = false;

    printf("%s%-20s %-11s %10s %10s %10s %8s %8s %10s\n", run->opt.dry_run ? "(dry run) " : "",
           "map", "status", "read", "written", "skipped", "failed", "seconds", "rows/s");
    for (size_t i = 0; i < run->njobs; i++) {
        const struct dw_initsync_job *job = &run->jobs[i];
        int state = atomic_load(&job->state);
        long long r = atomic_load(&job->nread), w = atomic_load(&job->nwritten);
        long long s = atomic_load(&job->nskipped), f = atomic_load(&job->nfailed);
        double secs = seconds_of(job);

        printf("%s%-20s %-11s %10lld %10lld %10lld %8lld %8.1f %10.0f\n",
               run->opt.dry_run ? "          " : "", job->map->name, state_name(state), r, w, s,
               f, secs, secs > 0 ? (double) r / secs : 0);
        total.read += r;
        total.written += w;
        total.skipped += s;
        total.failed += f;
        if (secs > total_secs)
            total_secs = secs;
    }
    if (run->njobs > 1)
        printf("%s%-20s %-11s %10lld %10lld %10lld %8lld\n", run->opt.dry_run ? "          " : "",
               "total", "", total.read, total.written, total.skipped, total.failed);
    fflush(stdout);

    for (size_t i = 0; i < run->njobs; i++) {
        const struct dw_initsync_job *job = &run->jobs[i];
        int state = atomic_load(&job->state);

        if (job->before.read > 0 && state != DW_INITSYNC_FINISHED)
            dw_initsync_say("info", "table map \"%s\": resumed after %lld rows of an earlier run",
                            job->map->name, job->before.read);
        if (job->before.failed > 0)
            dw_initsync_say("info", "table map \"%s\": %lld rows failed in earlier runs (see "
                            "dualwrite.initsync_error)", job->map->name, job->before.failed);
        if (state == DW_INITSYNC_FAILED || state == DW_INITSYNC_SKIPPED) {
            dw_initsync_say("error", "table map \"%s\": %s", job->map->name, job->message);
            if (job->hint[0])
                dw_initsync_say("hint", "%s", job->hint);
        }
        if (state == DW_INITSYNC_FAILED || state == DW_INITSYNC_INTERRUPTED ||
            state == DW_INITSYNC_STOPPED)
            resume_hint = true;
    }
    if (atomic_load(&run->stop))
        dw_initsync_say("error", "stopped: more than %ld rows failed (--max-errors %ld); they "
                        "are listed in dualwrite.initsync_error", run->opt.max_errors,
                        run->opt.max_errors);
    else if (dw_initsync_interrupted)
        dw_initsync_say("info", "interrupted");
    if (resume_hint && !run->opt.dry_run)
        dw_initsync_say("hint", "Run the same command with --resume to continue where it "
                        "stopped; finished chunks are not sent again.");
}
