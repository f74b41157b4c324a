/*
 * dualwrited: the bridge service's main program.
 *
 * Start-up is strict: a configuration or map error, a map whose target table
 * or column does not exist, or a target that cannot be reached ends the
 * process with a clear message (exit 2 for configuration, 1 otherwise),
 * because a bridge that would fail every commit is better not running.  Then
 * the resolver starts (it settles what an earlier run left prepared) and the
 * HTTP server opens.
 *
 * Signals are blocked in every thread and taken by the main thread alone with
 * sigwait, so no handler ever runs inside libpq or the allocator:
 *   SIGHUP          reload configuration and maps; the new state is built and
 *                   checked in full before it replaces the old, and a bad one
 *                   is logged line by line and discarded;
 *   SIGTERM/SIGINT  stop accepting, let in-flight batches finish (a second
 *                   signal stops at once), stop.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"
#include "bridge/service/dw_http.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_resolver.h"
#include "bridge/service/dw_settler.h"
#include "bridge/service/dw_state.h"

#ifndef DW_VERSION
#define DW_VERSION "unknown"
#endif

#define EXIT_CONFIG 2
#define DRAIN_REPORT_S 5
#define SETTLE_AT_STOP_MS 5000   /* queued outcomes applied at stop, at most this long */

static const char usage_text[] =
    "Usage: dualwrited -c FILE [--check] [--log-level LEVEL]\n"
    "\n"
    "The dualwrite bridge: applies each source transaction's batch to its target.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE      the service configuration (dualwrite.json)\n"
    "      --check            validate the configuration and the table maps, print\n"
    "                         every error, and exit (0 valid, 2 invalid)\n"
    "  -l, --log-level LEVEL  debug, info, warning or error (overrides \"log_level\")\n"
    "  -h, --help             show this help and exit\n"
    "  -V, --version          show the version and exit\n"
    "\n"
    "Signals: SIGHUP reloads configuration and maps; SIGTERM or SIGINT drains\n"
    "in-flight batches and stops.\n";

/* Log sink: "2024-05-01T12:00:00.123Z LEVEL: message", one write per line. */
static void log_sink(dw_log_level level, const char *line, void *arg)
{
    struct timespec ts;
    struct tm tm;
    char stamp[40];

    (void) arg;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s: %s\n", stamp, ts.tv_nsec / 1000000, dw_log_level_name(level), line);
}

static void print_lines(const char *prefix, const char *lines)
{
    const char *p = lines;

    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t) (nl - p) : strlen(p);

        if (n)
            dw_logerr("%s%.*s", prefix, (int) n, p);
        p = nl ? nl + 1 : NULL;
    }
}

static void apply_log_level(const struct dw_config *cfg, const char *override)
{
    dw_log_level level;

    if (override)
        return;
    if (cfg->log_level && dw_log_parse_level(cfg->log_level, &level))
        dw_log_set_level(level);
}

/* Load config and maps only (--check, and the first step of start and reload). */
static struct dw_state *load(const char *path, const char *what)
{
    struct dw_state *st = NULL;
    struct dw_error err;
    char *errors = NULL;

    dw_error_clear(&err);
    if (dw_state_load(path, &st, &errors, &err) != DW_OK) {
        print_lines("", errors);
        dw_logerr("%s: %s", what, err.message);
        free(errors);
        return NULL;
    }
    free(errors);
    return st;
}

static struct dw_state *load_and_check(const char *path, const char *what, int *exit_code)
{
    struct dw_state *st = load(path, what);
    struct dw_error err;
    char *errors = NULL;

    *exit_code = EXIT_CONFIG;
    if (!st)
        return NULL;
    dw_error_clear(&err);
    if (dw_state_check_targets(st, &errors, &err) != DW_OK) {
        print_lines("", errors);
        dw_logerr("%s: %s", what, err.message);
        free(errors);
        *exit_code = err.code == DW_ERR_CONNECT ? EXIT_FAILURE : EXIT_CONFIG;
        dw_state_release(st);
        return NULL;
    }
    free(errors);
    return st;
}

static void reload(const char *path, struct dw_http *http, const char *level_override)
{
    struct dw_state *st;
    int code;

    dw_info("SIGHUP: reloading \"%s\"", path);
    st = load_and_check(path, "reload refused, the previous configuration stays in force", &code);
    if (!st)
        return;
    if (dw_http_listen_changed(http, st->config))
        dw_warn("reload: the \"listen\" settings changed; they take effect at the next restart");
    apply_log_level(st->config, level_override);
    dw_state_install(st);
    dw_info("reload: configuration generation %lu in force (%zu table map%s, %zu connector%s)", st->generation,
            st->maps->nmaps, st->maps->nmaps == 1 ? "" : "s", st->nconns, st->nconns == 1 ? "" : "s");
    dw_resolver_wake();
}

/* Wait for in-flight batches; a second SIGTERM/SIGINT cuts the wait short. */
static void drain(const sigset_t *set)
{
    int64_t start = dw_now_ms(), last_report = start;

    while (dw_metrics_inflight() > 0) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        int sig = sigtimedwait(set, NULL, &ts);

        if (sig == SIGTERM || sig == SIGINT) {
            dw_warn("second stop signal: stopping with %ld batch%s in flight (the resolver settles them at "
                    "the next start)", dw_metrics_inflight(), dw_metrics_inflight() == 1 ? "" : "es");
            return;
        }
        if (dw_now_ms() - last_report >= DRAIN_REPORT_S * 1000) {
            dw_info("draining: %ld batch%s still in flight", dw_metrics_inflight(),
                    dw_metrics_inflight() == 1 ? "" : "es");
            last_report = dw_now_ms();
        }
    }
    dw_info("drained in %lld ms", (long long) (dw_now_ms() - start));
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *level_override = NULL;
    bool check_only = false;
    struct dw_state *st;
    struct dw_http *http = NULL;
    struct dw_error err;
    sigset_t set;
    int opt, code;

    while ((opt = getopt_long(argc, argv, "c:l:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            check_only = true;
            break;
        case 'l':
            level_override = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case 'V':
            printf("dualwrited %s\n", DW_VERSION);
            return 0;
        default:
            fputs(usage_text, stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dualwrited: unexpected argument \"%s\"\n%s", argv[optind], usage_text);
        return EXIT_CONFIG;
    }
    if (!config) {
        fprintf(stderr, "dualwrited: -c FILE is required\n%s", usage_text);
        return EXIT_CONFIG;
    }
    if (level_override) {
        dw_log_level level;

        if (!dw_log_parse_level(level_override, &level)) {
            fprintf(stderr, "dualwrited: unknown log level \"%s\" (valid: debug, info, warning, error)\n",
                    level_override);
            return EXIT_CONFIG;
        }
        dw_log_set_level(level);
    }

    if (check_only) {
        st = load(config, "configuration is not valid");
        if (!st)
            return EXIT_CONFIG;
        printf("%s: valid (%zu table map%s, %zu connector%s)\n", st->config->file, st->maps->nmaps,
               st->maps->nmaps == 1 ? "" : "s", st->nconns, st->nconns == 1 ? "" : "s");
        dw_state_release(st);
        return 0;
    }

    dw_log_set_sink(log_sink, NULL);
    /* Every thread created from here on inherits the blocked set. */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    dw_info("dualwrited %s starting (pid %ld)", DW_VERSION, (long) getpid());
    dw_metrics_init();
    dw_outcome_init();
    st = load_and_check(config, "cannot start", &code);
    if (!st)
        return code;
    apply_log_level(st->config, level_override);
    dw_state_install(st);

    dw_error_clear(&err);
    if (dw_resolver_start(&err) != DW_OK) {
        dw_logerr("cannot start: %s", err.message);
        dw_state_uninstall();
        return EXIT_FAILURE;
    }
    if (dw_settler_start(&err) != DW_OK) {
        /* outcomes are then settled in the HTTP threads, as they arrive */
        dw_warn("%s; outcomes are applied before they are answered", err.message);
    }
    st = dw_state_acquire();
    if (dw_http_start(st->config, &http, &err) != DW_OK) {
        dw_logerr("cannot start: %s", err.message);
        dw_state_release(st);
        dw_settler_stop(0);
        dw_resolver_stop();
        dw_state_uninstall();
        return err.code == DW_ERR_CONFIG ? EXIT_CONFIG : EXIT_FAILURE;
    }
    dw_info("ready: %zu table map%s, %zu connector%s, configuration \"%s\"", st->maps->nmaps,
            st->maps->nmaps == 1 ? "" : "s", st->nconns, st->nconns == 1 ? "" : "s", st->config->file);
    dw_state_release(st);

    for (;;) {
        int sig;

        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(config, http, level_override);
            continue;
        }
        dw_info("%s: stopping; no new batches are accepted", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    dw_http_quiesce(http);
    drain(&set);
    dw_http_stop(http);
    dw_settler_stop(SETTLE_AT_STOP_MS);
    dw_resolver_stop();
    dw_state_uninstall();
    dw_outcome_cleanup();
    dw_metrics_cleanup();
    dw_info("stopped");
    return 0;
}
