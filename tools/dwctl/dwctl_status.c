/*
 * "dwctl status": what the running bridge says about itself (GET /v1/status),
 * printed as tables for a person or passed through as JSON for a script.
 *
 * The configuration file names the bridge: its Unix socket when it listens on
 * one, else its TCP address with the bearer token.  libcurl does the HTTP
 * (CURLOPT_UNIX_SOCKET_PATH for the socket).  The document is read with the
 * wire format's strict JSON parser; a member this version does not know is
 * ignored and one it expects but does not find prints as "-", so dwctl and
 * dualwrited of neighbouring versions still work together.
 *
 * Exit codes: 0 healthy; 1 something needs attention (a connector down, the
 * source unreachable, an in-doubt batch that needs a human, the service
 * stopping); 2 the service could not be asked (not running, wrong token,
 * unreadable answer) or the command line or configuration is wrong.
 */
#include "tools/dwctl/dwctl.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_json.h"
#include "bridge/service/dw_config.h"

#define PROG "dwctl status"
#define MAX_ANSWER_BYTES (16u * 1024u * 1024u)
#define CONNECT_TIMEOUT_MS 5000L
#define TOTAL_TIMEOUT_MS 15000L
#define DEFAULT_TCP_HOST "127.0.0.1"
#define MAX_COLS 10

void dwctl_status_usage(FILE *out)
{
    fprintf(out,
            "usage: dwctl status -c FILE [--json]\n"
            "\n"
            "Ask the running bridge (dualwrited) how it is doing, through the Unix socket\n"
            "or TCP address of its configuration, and print: the service (version, pid,\n"
            "uptime, state), the connectors (type, commit mode, session pool, sync limits\n"
            "in use), the sync limits' waits and refusals, the table maps (batches,\n"
            "failures, rows) and the in-doubt batches.\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   service configuration (dualwrite.json)\n"
            "      --json          print the bridge's status document as it is\n"
            "\n"
            "Exit status: 0 healthy; 1 something needs attention (a connector is down,\n"
            "the source is unreachable, an in-doubt batch needs a human, the bridge is\n"
            "stopping); 2 the bridge could not be reached, or a usage or configuration\n"
            "error.\n");
}

static void report(const char *level, const char *fmt, ...) DW_PRINTF(2, 3);
static void report(const char *level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: %s: ", PROG, level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------- HTTP */

struct answer {
    struct dw_buf body;
    bool too_large;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;

    if (a->body.len + len > MAX_ANSWER_BYTES) {
        a->too_large = true;
        return 0;
    }
    dw_buf_append(&a->body, data, len);
    return dw_buf_failed(&a->body) ? 0 : len;
}

/* "host:port", "[v6]:port", ":port" or "port" as a URL (the service's own rules). */
static void tcp_url(const char *spec, char *url, size_t size)
{
    const char *colon = strrchr(spec, ':');

    if (spec[0] == '[')
        snprintf(url, size, "http://%s/v1/status", spec);
    else if (!colon)
        snprintf(url, size, "http://" DEFAULT_TCP_HOST ":%s/v1/status", spec);
    else if (colon == spec)
        snprintf(url, size, "http://" DEFAULT_TCP_HOST "%s/v1/status", spec);
    else
        snprintf(url, size, "http://%s/v1/status", spec);
}

/*
 * Why a Unix socket refuses: libcurl's message for it names "localhost port
 * 80", so ask the socket ourselves.
 */
static const char *unix_socket_error(const char *path, char *buf, size_t size)
{
    struct sockaddr_un addr;
    int fd, e;

    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path))
        return "the socket path is too long";
    memcpy(addr.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    e = connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0 ? 0 : errno;
    close(fd);
    if (!e)
        return NULL;
    snprintf(buf, size, "%s", strerror(e));
    return buf;
}

/* GET /v1/status; false (with the message printed) when it could not be had. */
static bool fetch_status(const struct dw_config *cfg, struct answer *a)
{
    char url[512], where[512], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    long code = 0;
    CURLcode rc;
    CURL *curl;

    if (cfg->listen_unix) {
        snprintf(url, sizeof(url), "http://localhost/v1/status");
        snprintf(where, sizeof(where), "\"%s\"", cfg->listen_unix);
    } else if (cfg->listen_tcp) {
        tcp_url(cfg->listen_tcp, url, sizeof(url));
        snprintf(where, sizeof(where), "\"%s\" (TCP)", cfg->listen_tcp);
    } else {
        report("error", "%s: the configuration has no listen address", cfg->file);
        return false;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(curl = curl_easy_init())) {
        report("error", "could not initialise libcurl");
        return false;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (cfg->listen_unix) {
        curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, cfg->listen_unix);
    } else if (cfg->token) {
        size_t n = strlen(cfg->token) + sizeof("Authorization: Bearer ");

        auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Authorization: Bearer %s", cfg->token);
            headers = curl_slist_append(headers, auth);
        }
    }
    if (headers)
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "dwctl");
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();

    if (rc != CURLE_OK) {
        if (a->too_large)
            report("error", "the bridge at %s answered with more than %u bytes", where, MAX_ANSWER_BYTES);
        else {
            char why[128];
            const char *sock_err = rc == CURLE_COULDNT_CONNECT && cfg->listen_unix
                                       ? unix_socket_error(cfg->listen_unix, why, sizeof(why)) : NULL;

            report("error", "could not reach the bridge at %s: %s", where,
                   sock_err ? sock_err : errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)
            report("hint", "Is dualwrited running? Start it with \"dualwrited -c %s\" (or \"systemctl start "
                           "dualwrited\"), and check that this user may use its socket.", cfg->file);
        return false;
    }
    if (code != 200) {
        report("error", "the bridge at %s answered HTTP %ld%s%.*s", where, code, a->body.len ? ": " : "",
               (int) (a->body.len > 300 ? 300 : a->body.len), a->body.data ? a->body.data : "");
        if (code == 401)
            report("hint", "The bearer token of %s is not the one the bridge uses.", cfg->file);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- reading the document */

static const struct dw_json *member(const struct dw_json *obj, const char *name)
{
    return obj && obj->type == DW_JSON_OBJECT ? dw_json_find(obj, name) : NULL;
}

static const char *str(const struct dw_json *obj, const char *name)
{
    const struct dw_json *v = member(obj, name);

    return v && v->type == DW_JSON_STRING ? v->u.string : NULL;
}

static double num(const struct dw_json *obj, const char *name)
{
    const struct dw_json *v = member(obj, name);

    return v && v->type == DW_JSON_NUMBER ? strtod(v->u.number, NULL) : NAN;
}

static bool is_true(const struct dw_json *obj, const char *name)
{
    const struct dw_json *v = member(obj, name);

    return v && v->type == DW_JSON_BOOL && v->u.boolean;
}

static bool is_false(const struct dw_json *obj, const char *name)
{
    const struct dw_json *v = member(obj, name);

    return v && v->type == DW_JSON_BOOL && !v->u.boolean;
}

static size_t count(const struct dw_json *arr)
{
    return arr && arr->type == DW_JSON_ARRAY ? arr->len : 0;
}

/* ---------------------------------------------------------------- tables */

/* Rows of cells (each an arena string), printed with padded columns. */
struct table {
    struct dw_arena *arena;
    size_t ncols, nrows, cap;
    const char **cells;          /* nrows * ncols */
};

static void table_init(struct table *t, struct dw_arena *arena, size_t ncols)
{
    memset(t, 0, sizeof(*t));
    t->arena = arena;
    t->ncols = ncols;
}

static void table_row(struct table *t, ...) /* ncols strings (NULL prints "-") */
{
    va_list ap;

    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        const char **cells = dw_arena_alloc(t->arena, cap * t->ncols * sizeof(*cells));

        if (!cells)
            return;
        if (t->nrows)
            memcpy(cells, t->cells, t->nrows * t->ncols * sizeof(*cells));
        t->cells = cells;
        t->cap = cap;
    }
    va_start(ap, t);
    for (size_t c = 0; c < t->ncols; c++) {
        const char *s = va_arg(ap, const char *);

        t->cells[t->nrows * t->ncols + c] = s ? s : "-";
    }
    va_end(ap);
    t->nrows++;
}

static void table_print(const struct table *t)
{
    size_t width[MAX_COLS] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t n = strlen(t->cells[r * t->ncols + c]);

            if (n > width[c])
                width[c] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];

            if (c + 1 == t->ncols)
                printf("%s\n", s);
            else
                printf("%-*s  ", (int) width[c], s);
        }
    }
}

static const char *fmt(struct dw_arena *a, const char *f, ...) DW_PRINTF(2, 3);
static const char *fmt(struct dw_arena *a, const char *f, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, f);
    vsnprintf(buf, sizeof(buf), f, ap);
    va_end(ap);
    return dw_arena_strdup(a, buf);
}

/* An integer count, or "-" when absent. */
static const char *count_text(struct dw_arena *a, double v)
{
    return isnan(v) ? NULL : fmt(a, "%.0f", v);
}

/* "1d 02h 03m", "2h 03m 04s", "3m 04s", "5.2s". */
static const char *duration_text(struct dw_arena *a, double s)
{
    long long t;

    if (isnan(s) || s < 0)
        return NULL;
    if (s < 60)
        return fmt(a, "%.1fs", s);
    t = (long long) s;
    if (t < 3600)
        return fmt(a, "%lldm %02llds", t / 60, t % 60);
    if (t < 86400)
        return fmt(a, "%lldh %02lldm %02llds", t / 3600, t % 3600 / 60, t % 60);
    return fmt(a, "%lldd %02lldh %02lldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
}

/*
 * "use/max", or "use (off)" when the limit is off; with window_s, " per Ns"
 * follows, and no window at all is "off".  Execution seconds with one decimal.
 */
static const char *use_text(struct dw_arena *a, const struct dw_json *th, const char *limit, bool seconds,
                            bool windowed)
{
    const struct dw_json *lim = member(th, limit);
    double use = num(lim, "use"), max = num(lim, "max"), window = num(th, "window_s");
    const char *per = "";

    if (isnan(use))
        return NULL;
    if (windowed) {
        if (isnan(window) || window <= 0)
            return "off";
        per = fmt(a, " per %.0fs", window);
    }
    if (isnan(max) || max <= 0)
        return seconds ? fmt(a, "%.1f (off)%s", use, per) : fmt(a, "%.0f (off)%s", use, per);
    return seconds ? fmt(a, "%.1f/%.0f%s", use, max, per) : fmt(a, "%.0f/%.0f%s", use, max, per);
}

/* ---------------------------------------------------------------- the report */

struct verdict {
    size_t down, needs_human;
    bool source_down, stopping;
};

static void print_service(struct dw_arena *a, const struct dw_json *root, struct verdict *v)
{
    const struct dw_json *src = member(root, "source");
    const char *state = str(root, "status");
    struct table t;

    v->stopping = state && strcmp(state, "running") != 0;
    v->source_down = is_false(src, "reachable");
    table_init(&t, a, 2);
    table_row(&t, "version", str(root, "version"));
    table_row(&t, "pid", count_text(a, num(root, "pid")));
    table_row(&t, "uptime", duration_text(a, num(root, "uptime_s")));
    table_row(&t, "state", state);
    table_row(&t, "config", fmt(a, "%s (generation %s)", str(root, "config") ? str(root, "config") : "-",
                                count_text(a, num(root, "generation")) ? count_text(a, num(root, "generation"))
                                                                       : "-"));
    table_row(&t, "source",
              fmt(a, "system %s, %s%s%s", str(src, "system") ? str(src, "system") : "-",
                  v->source_down ? "not reachable" : is_true(src, "reachable") ? "reachable" : "not checked yet",
                  str(src, "error") ? ": " : "", str(src, "error") ? str(src, "error") : ""));
    printf("SERVICE\n");
    table_print(&t);
}

static void print_connectors(struct dw_arena *a, const struct dw_json *root, struct verdict *v)
{
    const struct dw_json *conns = member(root, "connectors");
    struct table t, lt;

    table_init(&t, a, 9);
    table_row(&t, "NAME", "TYPE", "COMMIT", "STATE", "SESSIONS", "REQUESTS/WINDOW", "EXEC S/WINDOW",
              "CONCURRENT", "PAUSED");
    table_init(&lt, a, 5);
    table_row(&lt, "CONNECTOR", "LIMIT", "WAITS", "WAITED", "REJECTED");
    for (size_t i = 0; i < count(conns); i++) {
        const struct dw_json *c = &conns->u.items[i];
        const struct dw_json *pool = member(c, "pool"), *th = member(c, "throttle");
        const char *state = str(c, "state"), *name = str(c, "name");
        double paused = num(th, "paused_ms");
        static const char *const limits[] = {"requests_per_window", "execution_s_per_window", "concurrent",
                                             "target"};

        if (state && strcmp(state, "down") == 0)
            v->down++;
        table_row(&t, name, str(c, "type"),
                  fmt(a, "%s%s", str(c, "commit") ? str(c, "commit") : "-",
                      is_true(c, "two_phase") ? " (2PC)" : is_false(c, "two_phase") ? " (1PC)" : ""),
                  state,
                  pool ? fmt(a, "%s busy, %s open of %s%s", count_text(a, num(pool, "busy")),
                             count_text(a, num(pool, "open")), count_text(a, num(pool, "size")),
                             num(pool, "waiting") > 0 ? fmt(a, ", %.0f waiting", num(pool, "waiting")) : "")
                       : NULL,
                  use_text(a, th, "requests_per_window", false, true),
                  use_text(a, th, "execution_s_per_window", true, true),
                  use_text(a, th, "concurrent", false, false),
                  isnan(paused) ? NULL : paused > 0 ? fmt(a, "%.1fs more", paused / 1000.0) : "no");
        for (size_t l = 0; th && l < sizeof(limits) / sizeof(limits[0]); l++) {
            const struct dw_json *lim = member(th, limits[l]);

            if (!lim || (num(lim, "waits") <= 0 && num(lim, "rejections") <= 0))
                continue;
            table_row(&lt, name, limits[l], count_text(a, num(lim, "waits")),
                      duration_text(a, num(lim, "wait_ms") / 1000.0), count_text(a, num(lim, "rejections")));
        }
        if (str(c, "error"))
            table_row(&t, "", fmt(a, "error: %s", str(c, "error")), "", "", "", "", "", "", "");
    }
    printf("\nCONNECTORS\n");
    table_print(&t);
    printf("\nSYNC LIMITS (waits and refusals since start)\n");
    if (lt.nrows == 1)
        printf("no batch has waited for a sync limit or been refused by one\n");
    else
        table_print(&lt);
}

static void print_maps(struct dw_arena *a, const struct dw_json *root)
{
    const struct dw_json *maps = member(root, "maps");
    struct table t;

    table_init(&t, a, 7);
    table_row(&t, "MAP", "SOURCE", "CONNECTOR", "TARGET", "BATCHES", "FAILED", "ROWS");
    for (size_t i = 0; i < count(maps); i++) {
        const struct dw_json *m = &maps->u.items[i];

        table_row(&t, str(m, "name"), str(m, "source"), str(m, "connector"), str(m, "target"),
                  count_text(a, num(m, "batches")), count_text(a, num(m, "failed")), count_text(a, num(m, "rows")));
    }
    printf("\nMAPS\n");
    table_print(&t);
}

static void print_in_doubt(struct dw_arena *a, const struct dw_json *root, struct verdict *v)
{
    const struct dw_json *list = member(root, "in_doubt");
    struct table t;

    table_init(&t, a, 6);
    table_row(&t, "BATCH", "CONNECTOR", "AGE", "STATE", "DECISION", "NEEDS HUMAN");
    for (size_t i = 0; i < count(list); i++) {
        const struct dw_json *d = &list->u.items[i];
        bool human = is_true(d, "needs_human");

        v->needs_human += human;
        table_row(&t, str(d, "id"), str(d, "connector"), duration_text(a, num(d, "age_ms") / 1000.0),
                  fmt(a, "%s%s", str(d, "state") ? str(d, "state") : "-",
                      is_true(d, "discovered") ? " (found on the target)" : ""),
                  str(d, "decision"), human ? "YES" : "no");
    }
    printf("\nIN-DOUBT BATCHES\n");
    if (t.nrows == 1)
        printf("none\n");
    else
        table_print(&t);
}

static int summarize(const struct verdict *v)
{
    const char *sep = " ";

    if (!v->down && !v->needs_human && !v->source_down && !v->stopping) {
        printf("\nhealthy\n");
        return DWCTL_EXIT_OK;
    }
    printf("\nneeds attention:");
    if (v->stopping) {
        printf("%sthe bridge is stopping", sep);
        sep = "; ";
    }
    if (v->down) {
        printf("%s%zu connector%s down", sep, v->down, v->down == 1 ? " is" : "s are");
        sep = "; ";
    }
    if (v->source_down) {
        printf("%sthe source database is not reachable", sep);
        sep = "; ";
    }
    if (v->needs_human)
        printf("%s%zu in-doubt batch%s a human (see the bridge's log)", sep, v->needs_human,
               v->needs_human == 1 ? " needs" : "es need");
    printf("\n");
    return DWCTL_EXIT_FAIL;
}

/* The exit code the document calls for, without printing (--json). */
static int judge(const struct dw_json *root)
{
    struct verdict v = {0};
    const struct dw_json *conns = member(root, "connectors"), *list = member(root, "in_doubt");
    const char *state = str(root, "status");

    for (size_t i = 0; i < count(conns); i++) {
        const char *s = str(&conns->u.items[i], "state");

        v.down += s && strcmp(s, "down") == 0;
    }
    for (size_t i = 0; i < count(list); i++)
        v.needs_human += is_true(&list->u.items[i], "needs_human");
    v.source_down = is_false(member(root, "source"), "reachable");
    v.stopping = state && strcmp(state, "running") != 0;
    return v.down || v.needs_human || v.source_down || v.stopping ? DWCTL_EXIT_FAIL : DWCTL_EXIT_OK;
}

/* ---------------------------------------------------------------- entry */

static int usage_error(const char *fmt_, const char *arg)
{
    fprintf(stderr, "%s: ", PROG);
    fprintf(stderr, fmt_, arg);
    fputs("\n\n", stderr);
    dwctl_status_usage(stderr);
    return DWCTL_EXIT_USAGE;
}

int dwctl_status_run(const struct dwctl_context *ctx, int argc, char **argv)
{
    const char *config = ctx->config_path;
    struct dw_config *cfg = NULL;
    struct dw_json_limits limits = {MAX_ANSWER_BYTES, 32};
    struct dw_json *root = NULL;
    struct answer ans;
    struct dw_arena arena;
    struct dw_error err;
    char *errors = NULL;
    bool json = false;
    int rc = DWCTL_EXIT_USAGE;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            dwctl_status_usage(stdout);
            return DWCTL_EXIT_OK;
        } else if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            if (++i >= argc)
                return usage_error("option \"%s\" needs a file name", arg);
            config = argv[i];
        } else if (strncmp(arg, "--config=", 9) == 0) {
            config = arg + 9;
        } else if (strcmp(arg, "--json") == 0) {
            json = true;
        } else if (arg[0] == '-') {
            return usage_error("unknown option \"%s\"", arg);
        } else {
            return usage_error("unexpected argument \"%s\"", arg);
        }
    }
    if (!config)
        return usage_error("%s", "missing configuration file (-c FILE)");

    dw_error_clear(&err);
    if (dw_config_load(config, &cfg, &errors, &err) != DW_OK) {
        if (errors && errors[0]) {
            fputs(errors, stderr);
            if (errors[strlen(errors) - 1] != '\n')
                fputc('\n', stderr);
        }
        report("error", "%s", err.message);
        free(errors);
        return DWCTL_EXIT_USAGE;
    }
    free(errors);

    memset(&ans, 0, sizeof(ans));
    dw_buf_init(&ans.body);
    dw_arena_init(&arena, 16384);
    if (!fetch_status(cfg, &ans))
        goto done;
    dw_error_clear(&err);
    if (dw_json_parse(ans.body.data ? ans.body.data : "", ans.body.len, &limits, &arena, &root, &err) != DW_OK ||
        root->type != DW_JSON_OBJECT) {
        report("error", "the bridge's status document could not be read: %s",
               root ? "not a JSON object" : err.message);
        goto done;
    }
    if (json) {
        fwrite(ans.body.data, 1, ans.body.len, stdout);
        putchar('\n');
        rc = judge(root);
    } else {
        struct verdict v = {0};

        print_service(&arena, root, &v);
        print_connectors(&arena, root, &v);
        print_maps(&arena, root);
        print_in_doubt(&arena, root, &v);
        rc = summarize(&v);
    }
    if (fflush(stdout) != 0) {
        report("error", "could not write the output");
        rc = DWCTL_EXIT_USAGE;
    }
done:
    dw_arena_cleanup(&arena);
    dw_buf_cleanup(&ans.body);
    dw_config_free(cfg);
    return rc;
}
