/*
 * dw-initsync: copies the rows that exist in the source before (or while)
 * live sync runs to the target, map by map, in chunks, resumably
 * (DESIGN.md section 8; tools/initsync/README.md is the user's guide).
 *
 * This file is the top level: options and usage errors, the configuration
 * and the maps, the checkpoints' start (refusals change nothing), signals,
 * the run, the summary and the exit status.  The work is in the files that
 * dw_initsync.h lists.
 */
#include "tools/initsync/dw_initsync.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/common/dw_log.h"

#ifndef DW_VERSION
#define DW_VERSION "0.1.0"
#endif

#define PROG "dw-initsync"
#define MAX_JOBS 64

volatile sig_atomic_t dw_initsync_interrupted;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " -c CONFIG (--map NAME ... | --all) [OPTIONS]\n"
            "\n"
            "Copy the rows of the source tables to the target through the table maps (the\n"
            "initial sync), while live sync keeps running: chunk by chunk in key order, each\n"
            "chunk read FOR SHARE, mapped like live sync maps an insert, upserted on the\n"
            "target in one transaction, then checkpointed in the source's schema dualwrite.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    service configuration (dualwrite.json)\n"
            "      --map NAME       copy this table map (repeatable)\n"
            "      --all            copy every table map\n"
            "      --chunk N        source rows per chunk (default %d; at most the\n"
            "                       connector's records_per_transaction)\n"
            "      --resume         continue unfinished maps where their checkpoint is;\n"
            "                       maps that finished earlier are skipped\n"
            "      --restart        forget the chosen maps' checkpoints and failed rows and\n"
            "                       start over\n"
            "      --dry-run        read and map every row, write nothing anywhere; shows what\n"
            "                       would be written, skipped and rejected by the maps\n"
            "      --max-errors N   stop the run once more than N rows failed (default %d;\n"
            "                       0 stops at the first)\n"
            "      --rate N         copy at most N rows per second over all maps\n"
            "      --jobs N         copy up to N independent maps at once (default 1)\n"
            "  -h, --help           show this help and exit\n"
            "  -V, --version        show the version and exit\n"
            "\n"
            "Maps are copied parents first (depends_on).  Ctrl-C stops after the chunk at\n"
            "hand; run the same command with --resume to continue.  A map with an\n"
            "unfinished copy does not start again without --resume or --restart.\n"
            "\n"
            "Exit status: 0 every chosen map copied and no row failed; 1 rows failed or a\n"
            "map did not finish; 2 usage or configuration error (nothing was copied).\n",
            DW_INITSYNC_DEFAULT_CHUNK, DW_INITSYNC_DEFAULT_MAX_ERRORS);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs(PROG ": ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    fputs("Try \"" PROG " --help\" for more information.\n", stderr);
    return DW_INITSYNC_EXIT_USAGE;
}

/* ---------------------------------------------------------------- options */

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/*
 * The value of an option that takes one: "--opt VALUE" or "--opt=VALUE".
 * Returns NULL (after reporting) when missing.
 */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *bad)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, name, n) == 0 && a[n] == '=')
        return a + n + 1;
    if (*i + 1 >= argc) {
        usage_error("option \"%s\" needs a value", name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

static bool is_option(const char *a, const char *name)
{
    size_t n = strlen(name);

    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* 0: parsed; otherwise the exit status (help and version exit 0 through *done). */
static int parse_options(int argc, char **argv, struct dw_initsync_options *o, bool *done)
{
    bool bad = false;

    *done = false;
    o->chunk = DW_INITSYNC_DEFAULT_CHUNK;
    o->max_errors = DW_INITSYNC_DEFAULT_MAX_ERRORS;
    o->jobs = 1;
    o->maps = calloc((size_t) argc, sizeof(*o->maps));
    if (!o->maps)
        return usage_error("%s", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            *done = true;
            return DW_INITSYNC_EXIT_OK;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf(PROG " (dualwrite) %s\n", DW_VERSION);
            *done = true;
            return DW_INITSYNC_EXIT_OK;
        }
        if (strcmp(a, "-c") == 0 || is_option(a, "--config")) {
            if (!(v = option_value(argc, argv, &i, strcmp(a, "-c") == 0 ? "-c" : "--config", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            o->config_path = v;
        } else if (is_option(a, "--map")) {
            if (!(v = option_value(argc, argv, &i, "--map", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            if (!*v)
                return usage_error("%s", "option \"--map\" needs a map name");
            o->maps[o->nmaps++] = v;
        } else if (strcmp(a, "--all") == 0) {
            o->all = true;
        } else if (strcmp(a, "--resume") == 0) {
            o->resume = true;
        } else if (strcmp(a, "--restart") == 0) {
            o->restart = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = true;
        } else if (is_option(a, "--chunk")) {
            if (!(v = option_value(argc, argv, &i, "--chunk", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            if (!parse_long(v, 1, DW_INITSYNC_MAX_CHUNK, &o->chunk))
                return usage_error("invalid value \"%s\" for \"--chunk\": expected a number of "
                                   "rows from 1 to 1000000", v);
        } else if (is_option(a, "--max-errors")) {
            if (!(v = option_value(argc, argv, &i, "--max-errors", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            if (!parse_long(v, 0, 1000000000L, &o->max_errors))
                return usage_error("invalid value \"%s\" for \"--max-errors\": expected a number "
                                   "of rows, 0 or more", v);
        } else if (is_option(a, "--rate")) {
            char *end;

            if (!(v = option_value(argc, argv, &i, "--rate", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            errno = 0;
            o->rate = strtod(v, &end);
            if (errno || end == v || *end || !(o->rate >= 1) || o->rate > 1e9)
                return usage_error("invalid value \"%s\" for \"--rate\": expected rows per "
                                   "second, 1 or more", v);
        } else if (is_option(a, "--jobs")) {
            if (!(v = option_value(argc, argv, &i, "--jobs", &bad)))
                return DW_INITSYNC_EXIT_USAGE;
            if (!parse_long(v, 1, MAX_JOBS, &n))
                return usage_error("invalid value \"%s\" for \"--jobs\": expected a number from "
                                   "1 to 64", v);
            o->jobs = (int) n;
        } else if (a[0] == '-') {
            return usage_error("unknown option \"%s\"", a);
        } else {
            return usage_error("unexpected argument \"%s\"", a);
        }
    }
    if (bad)
        return DW_INITSYNC_EXIT_USAGE;
    if (!o->config_path)
        return usage_error("%s", "no configuration: use -c dualwrite.json");
    if (!o->all && o->nmaps == 0)
        return usage_error("%s", "no maps chosen: use --map NAME (repeatable) or --all");
    if (o->all && o->nmaps > 0)
        return usage_error("%s", "--all and --map exclude each other");
    if (o->resume && o->restart)
        return usage_error("%s", "--resume and --restart exclude each other");
    if (o->dry_run && o->restart)
        return usage_error("%s", "--dry-run changes nothing, so it cannot --restart");
    return DW_INITSYNC_EXIT_OK;
}

/* ---------------------------------------------------------------- signals and logs */

static void on_signal(int sig)
{
    static const char msg[] = "\n" PROG ": interrupted: stopping after the chunks at hand "
                              "(press Ctrl-C again to stop at once)\n";

    if (dw_initsync_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    dw_initsync_interrupted = 1;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do: the flag is what counts */
    }
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Library log lines (connectors) join our messages. */
static void log_sink(dw_log_level level, const char *line, void *arg)
{
    (void) arg;
    dw_initsync_say(dw_log_level_name(level), "%s", line);
}

/* ---------------------------------------------------------------- the run */

static int load(struct dw_initsync_run *run)
{
    struct dw_error err;
    char *errors = NULL;

    dw_error_clear(&err);
    if (dw_config_load(run->opt.config_path, &run->cfg, &errors, &err) != DW_OK) {
        if (errors)
            fprintf(stderr, "%s\n", errors);
        else
            dw_initsync_say_error("error", &err);
        free(errors);
        return DW_INITSYNC_EXIT_USAGE;
    }
    dw_error_clear(&err);
    if (dw_mapset_load((const char *const *) run->cfg->map_paths, run->cfg->nmap_paths, &run->set,
                       &errors, &err) != DW_OK) {
        if (errors)
            fprintf(stderr, "%s\n", errors);
        dw_initsync_say_error("error", &err);
        free(errors);
        return DW_INITSYNC_EXIT_USAGE;
    }
    dw_error_clear(&err);
    if (dw_initsync_plan_jobs(run, &err) != DW_OK) {
        dw_initsync_say_error("error", &err);
        return DW_INITSYNC_EXIT_USAGE;
    }
    return DW_INITSYNC_EXIT_OK;
}

/*
 * Schema, tables, one lock per map, then the checkpoints: all are looked at
 * before any is written, so that a refusal changes nothing.
 */
static int start_checkpoints(struct dw_initsync_run *run, PGconn *conn)
{
    struct dw_error err;
    bool any_refused = false;

    dw_error_clear(&err);
    if (dw_initsync_checkpoint_setup(conn, true, &err) != DW_OK)
        goto fail;
    for (size_t i = 0; i < run->njobs; i++)
        if (dw_initsync_checkpoint_lock(conn, &run->jobs[i], &err) != DW_OK)
            goto fail;
    for (size_t i = 0; i < run->njobs; i++) {
        bool refused;

        if (dw_initsync_checkpoint_start(conn, run, &run->jobs[i], false, &refused, &err) != DW_OK)
            goto fail;
        if (refused) {
            dw_initsync_say("error", "%s", run->jobs[i].message);
            any_refused = true;
        }
    }
    if (any_refused) {
        dw_initsync_say("hint", "Continue with --resume, or start over with --restart.");
        return DW_INITSYNC_EXIT_USAGE;
    }
    for (size_t i = 0; i < run->njobs; i++) {
        bool refused;

        if (dw_initsync_checkpoint_start(conn, run, &run->jobs[i], true, &refused, &err) != DW_OK)
            goto fail;
    }
    return DW_INITSYNC_EXIT_OK;
fail:
    dw_initsync_say_error("error", &err);
    return err.code == DW_ERR_CONFIG ? DW_INITSYNC_EXIT_USAGE : DW_INITSYNC_EXIT_INCOMPLETE;
}

static int exit_status(const struct dw_initsync_run *run)
{
    for (size_t i = 0; i < run->njobs; i++) {
        const struct dw_initsync_job *job = &run->jobs[i];
        int state = atomic_load(&job->state);

        if (state != DW_INITSYNC_DONE && state != DW_INITSYNC_FINISHED)
            return DW_INITSYNC_EXIT_INCOMPLETE;
        if (job->before.failed + atomic_load(&job->nfailed) > 0)
            return DW_INITSYNC_EXIT_INCOMPLETE;
    }
    return DW_INITSYNC_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct dw_initsync_run run;
    PGconn *conn = NULL;
    bool done;
    int rc;

    memset(&run, 0, sizeof(run));
    run.prog = PROG;
    dw_log_set_level(DW_LOG_WARNING);
    dw_log_set_sink(log_sink, NULL);
    rc = parse_options(argc, argv, &run.opt, &done);
    if (rc != DW_INITSYNC_EXIT_OK || done)
        goto out;
    if ((rc = load(&run)) != DW_INITSYNC_EXIT_OK)
        goto out;
    dw_initsync_pace_init(&run.pace, run.opt.rate);
    run.progress_tty = isatty(STDERR_FILENO) && !(getenv("TERM") &&
                                                  strcmp(getenv("TERM"), "dumb") == 0);
    install_signals();

    /* also in a dry run: connection and privilege problems show before any thread starts */
    {
        struct dw_error err;

        dw_error_clear(&err);
        if (dw_initsync_source_connect(run.cfg, &conn, &err) != DW_OK) {
            dw_initsync_say_error("error", &err);
            rc = err.code == DW_ERR_CONFIG ? DW_INITSYNC_EXIT_USAGE : DW_INITSYNC_EXIT_INCOMPLETE;
            goto out_pace;
        }
    }
    if (!run.opt.dry_run && (rc = start_checkpoints(&run, conn)) != DW_INITSYNC_EXIT_OK)
        goto out_pace;

    dw_initsync_progress_start(&run);
    dw_initsync_plan_run(&run);
    dw_initsync_progress_stop(&run);
    dw_initsync_summary(&run);
    rc = exit_status(&run);

out_pace:
    dw_initsync_pace_cleanup(&run.pace);
out:
    if (conn)
        PQfinish(conn);     /* releases the maps' advisory locks */
    dw_initsync_plan_cleanup(&run);
    dw_mapset_free(run.set);
    dw_config_free(run.cfg);
    free(run.opt.maps);
    dw_log_set_sink(NULL, NULL);
    return rc;
}
