/*
 * "dwctl hooks": the capture triggers of the source database (DESIGN.md
 * section 2, "capture").  Each table that a map names gets two triggers,
 * both ENABLE ALWAYS so that session_replication_role cannot bypass them:
 *
 *   dualwrite_capture   AFTER INSERT OR UPDATE OR DELETE, FOR EACH ROW,
 *                       dualwrite.capture('<maps>', 'col', ...)
 *   dualwrite_truncate  BEFORE TRUNCATE, FOR EACH STATEMENT,
 *                       dualwrite.reject_truncate('<maps>')
 *
 * where <maps> is the sorted, comma-separated names of the maps covering the
 * table and the columns are dw_mapset_source_columns() of the table.
 * "install" brings every mapped table to that state in one source transaction
 * after checking every table and column first (so a bad map changes nothing);
 * "remove" drops them; "status" compares without changing anything.  Our
 * triggers are recognised by name only; clones on partitions (tgparentid
 * set) belong to their parent's trigger and are ignored.  Concurrent
 * install/remove runs are serialized by a transaction advisory lock, so
 * application writes are never blocked by a run that changes nothing.
 */
#include "tools/dwctl/dwctl.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bridge/common/dw_buf.h"
#include "bridge/service/dw_config.h"
#include "maps/dw_map.h"

enum { TG_CAPTURE, TG_TRUNCATE, NTRIGGERS };

static const char *const trigger_name[NTRIGGERS] = {"dualwrite_capture", "dualwrite_truncate"};

/* Key of the advisory lock that serializes "install" and "remove" runs. */
#define HOOKS_LOCK_KEY "6870707465660101"

enum hooks_verb { VERB_INSTALL, VERB_REMOVE, VERB_STATUS };

/* One of our triggers on one table, as the catalog shows it. */
struct trigger_state {
    bool present;
    bool shape_ok;            /* function, events, timing, level; no WHEN, no column list */
    char enabled;             /* tgenabled: 'O' origin, 'D', 'R' replica, 'A' always */
    size_t nargs;
    char **args;
};

struct hook_table {
    char *qualified;          /* "schema.table", as maps name it */
    char *schema, *name;
    char *ident;              /* quoted "schema"."table" for statements */
    char *maps;               /* sorted map names joined by ','; NULL: orphan */
    size_t ncols;
    const char **cols;        /* borrowed names in a malloc'd array */
    char relid[24];           /* "" when the table does not exist */
    char relkind;
    size_t nmissing;
    const char **missing;     /* the columns the maps read that the table lacks */
    struct trigger_state trig[NTRIGGERS];
};

struct hooks_run {
    const char *prog;         /* "dwctl hooks install", for messages */
    enum hooks_verb verb;
    bool all;
    struct dw_config *cfg;
    struct dw_mapset *set;
    PGconn *conn;
    struct dw_arena arena;    /* every string of the tables */
    size_t ntables, cap;
    struct hook_table *tables;
    size_t nmapped;           /* tables[0..nmapped) are mapped, the rest orphans */
    bool extension;           /* dualwrite is installed in the source database */
};

void dwctl_hooks_usage(FILE *out)
{
    fprintf(out,
            "usage: dwctl hooks install|remove|status -c CONFIG [--all]\n"
            "\n"
            "Manage the capture triggers of the source database: every table that a\n"
            "table map names gets \"dualwrite_capture\" (AFTER INSERT OR UPDATE OR DELETE,\n"
            "with the columns the maps read as arguments) and \"dualwrite_truncate\"\n"
            "(BEFORE TRUNCATE), both ENABLE ALWAYS.  The configuration gives the source\n"
            "database (source.conninfo) and the maps.\n"
            "\n"
            "Commands:\n"
            "  install   create the triggers, or replace those whose arguments are out of\n"
            "            date, in one transaction; checks every table and column first\n"
            "            and changes nothing when one is missing\n"
            "  remove    drop the triggers of the mapped tables; with --all, also of\n"
            "            every other table that carries them\n"
            "  status    show each mapped table's triggers: ok, missing, stale, disabled,\n"
            "            and tables with triggers that no map names (orphan)\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   service configuration (dualwrite.json)\n"
            "      --all           remove: also tables that no map names\n"
            "  -h, --help          show this help and exit\n"
            "\n"
            "Exit status: 0 done, or (status) all ok; 1 could not do the work (nothing\n"
            "was changed), or (status) a table is not ok; 2 usage or configuration\n"
            "error, or (status) any other error.\n");
}

/* ---------------------------------------------------------------- messages */

static void DW_PRINTF(3, 4) report(const struct hooks_run *r, const char *level, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: %s: ", r->prog, level);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* "could not WHAT: server message", with the server's detail and hint. */
static void report_pg(const struct hooks_run *r, const PGresult *res, const char *what)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
    char msg[1024];
    size_t n;

    snprintf(msg, sizeof(msg), "%s", primary ? primary : PQerrorMessage(r->conn));
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    report(r, "error", "could not %s: %s", what, n ? msg : "unknown error");
    if (detail)
        report(r, "detail", "%s", detail);
    if (hint)
        report(r, "hint", "%s", hint);
}

/* Server warnings reach the user in our format; notices are turned off. */
static void notice_receiver(void *arg, const PGresult *res)
{
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    report(arg, "warning", "%s", primary ? primary : "(no message)");
}

/* ---------------------------------------------------------------- the wanted state */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int cmp_table(const void *a, const void *b)
{
    return strcmp(((const struct hook_table *) a)->qualified,
                  ((const struct hook_table *) b)->qualified);
}

static struct hook_table *find_table(struct hooks_run *r, const char *schema, const char *name)
{
    for (size_t i = 0; i < r->ntables; i++)
        if (strcmp(r->tables[i].schema, schema) == 0 && strcmp(r->tables[i].name, name) == 0)
            return &r->tables[i];
    return NULL;
}

static struct hook_table *add_table(struct hooks_run *r, const char *schema, const char *name)
{
    struct hook_table *t;
    size_t ls = strlen(schema), ln = strlen(name);

    if (r->ntables == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct hook_table *n = realloc(r->tables, cap * sizeof(*n));

        if (!n)
            return NULL;
        r->tables = n;
        r->cap = cap;
    }
    t = &r->tables[r->ntables];
    memset(t, 0, sizeof(*t));
    t->schema = dw_arena_strdup(&r->arena, schema);
    t->name = dw_arena_strdup(&r->arena, name);
    t->qualified = dw_arena_alloc(&r->arena, ls + ln + 2);
    if (!t->schema || !t->name || !t->qualified)
        return NULL;
    memcpy(t->qualified, schema, ls);
    t->qualified[ls] = '.';
    memcpy(t->qualified + ls + 1, name, ln + 1);
    r->ntables++;
    return t;
}

/* The mapped tables, sorted by name, each with its maps and columns. */
static bool collect_mapped(struct hooks_run *r)
{
    const char **names = malloc((r->set->nmaps + 1) * sizeof(*names));

    if (!names)
        return false;
    for (size_t i = 0; i < r->set->nmaps; i++) {
        const char *src = r->set->maps[i].source_table;
        const char *dot = strchr(src, '.');
        char *schema;
        struct dw_buf joined;
        size_t n = 0;
        struct hook_table *t;

        if (!dot || !(schema = dw_arena_strndup(&r->arena, src, (size_t) (dot - src))))
            goto fail;
        if (find_table(r, schema, dot + 1))
            continue;
        if (!(t = add_table(r, schema, dot + 1)))
            goto fail;
        for (size_t j = i; j < r->set->nmaps; j++)
            if (strcmp(r->set->maps[j].source_table, src) == 0)
                names[n++] = r->set->maps[j].name;
        qsort(names, n, sizeof(*names), cmp_str);
        dw_buf_init(&joined);
        for (size_t j = 0; j < n; j++) {
            if (j)
                dw_buf_putc(&joined, ',');
            dw_buf_puts(&joined, names[j]);
        }
        t->maps = dw_buf_failed(&joined) ? NULL : dw_arena_strdup(&r->arena, joined.data);
        dw_buf_cleanup(&joined);
        t->ncols = dw_mapset_source_columns(r->set, src, &t->cols);
        if (!t->maps || t->ncols == 0)
            goto fail;
    }
    free(names);
    qsort(r->tables, r->ntables, sizeof(*r->tables), cmp_table);
    r->nmapped = r->ntables;
    return true;
fail:
    free(names);
    return false;
}

/* The first map (in dependency order) covering t that reads column col. */
static const struct dw_map *map_reading(const struct hooks_run *r, const struct hook_table *t,
                                        const char *col)
{
    for (size_t i = 0; i < r->set->nmaps; i++) {
        const struct dw_map *m = &r->set->maps[i];

        if (strcmp(m->source_table, t->qualified) != 0)
            continue;
        if (m->filter.column && strcmp(m->filter.column, col) == 0)
            return m;
        for (size_t k = 0; k < m->nkey; k++)
            if (strcmp(m->source_key[k], col) == 0)
                return m;
        for (size_t f = 0; f < m->nfields; f++)
            if (m->fields[f].source && strcmp(m->fields[f].source, col) == 0)
                return m;
    }
    return NULL;
}

/* ---------------------------------------------------------------- the catalog */

static PGresult *query(struct hooks_run *r, const char *sql, int nparams,
                       const char *const *params, const char *what)
{
    PGresult *res = PQexecParams(r->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        report_pg(r, res, what);
        PQclear(res);
        return NULL;
    }
    return res;
}

static bool exec(struct hooks_run *r, const char *sql, const char *what)
{
    PGresult *res = query(r, sql, 0, NULL, what);

    PQclear(res);
    return res != NULL;
}

static bool check_extension(struct hooks_run *r)
{
    PGresult *res = query(r,
                          "SELECT to_regprocedure('dualwrite.capture()') IS NOT NULL"
                          " AND to_regprocedure('dualwrite.reject_truncate()') IS NOT NULL"
                          " FROM pg_catalog.pg_extension WHERE extname = 'dualwrite'",
                          0, NULL, "look up the extension \"dualwrite\"");

    if (!res)
        return false;
    if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] != 't') {
        report(r, "error", "extension \"dualwrite\" has no function dualwrite.capture() or "
                           "dualwrite.reject_truncate()");
        report(r, "hint", "Update the extension with ALTER EXTENSION dualwrite UPDATE.");
        PQclear(res);
        return false;
    }
    r->extension = PQntuples(res) == 1;
    PQclear(res);
    return true;
}

/* tgargs: nargs NUL-terminated strings, as bytea in text form. */
static bool parse_args(struct hooks_run *r, struct trigger_state *s, const char *nargs,
                       const char *tgargs)
{
    size_t len;
    unsigned char *raw = PQunescapeBytea((const unsigned char *) tgargs, &len);
    const char *p, *end;

    if (!raw)
        return false;
    s->nargs = (size_t) strtoul(nargs, NULL, 10);
    s->args = dw_arena_zalloc(&r->arena, (s->nargs + 1) * sizeof(*s->args));
    p = (const char *) raw;
    end = p + len;
    for (size_t i = 0; s->args && i < s->nargs; i++) {
        const char *nul = p < end ? memchr(p, '\0', (size_t) (end - p)) : NULL;

        /* a malformed list reads as different arguments, which makes it stale */
        s->args[i] = dw_arena_strndup(&r->arena, p, nul ? (size_t) (nul - p) : 0);
        if (!s->args[i])
            break;
        p = nul ? nul + 1 : end;
    }
    PQfreemem(raw);
    return s->args && (s->nargs == 0 || s->args[s->nargs - 1]);
}

/* Existence, kind, missing columns (mapped tables) and our triggers. */
static bool inspect_table(struct hooks_run *r, struct hook_table *t)
{
    const char *params[2] = {t->schema, t->name};
    char what[600];
    PGresult *res;
    char *qs = PQescapeIdentifier(r->conn, t->schema, strlen(t->schema));
    char *qn = PQescapeIdentifier(r->conn, t->name, strlen(t->name));

    if (qs && qn) {
        size_t n = strlen(qs) + strlen(qn) + 2;

        if ((t->ident = dw_arena_alloc(&r->arena, n)))
            snprintf(t->ident, n, "%s.%s", qs, qn);
    }
    PQfreemem(qs);
    PQfreemem(qn);
    if (!t->ident) {
        report(r, "error", "could not quote the name of table \"%s\": %s", t->qualified,
               PQerrorMessage(r->conn));
        return false;
    }
    snprintf(what, sizeof(what), "look up table \"%s\"", t->qualified);
    res = query(r,
                "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname = $2",
                2, params, what);
    if (!res)
        return false;
    if (PQntuples(res) == 1) {
        snprintf(t->relid, sizeof(t->relid), "%s", PQgetvalue(res, 0, 0));
        t->relkind = PQgetvalue(res, 0, 1)[0];
    }
    PQclear(res);
    if (!t->relid[0])
        return true;

    params[0] = t->relid;
    if (t->maps) {
        res = query(r,
                    "SELECT attname FROM pg_catalog.pg_attribute"
                    " WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
                    1, params, what);
        if (!res)
            return false;
        t->missing = dw_arena_alloc(&r->arena, t->ncols * sizeof(*t->missing));
        for (size_t c = 0; t->missing && c < t->ncols; c++) {
            int row = 0;

            while (row < PQntuples(res) && strcmp(PQgetvalue(res, row, 0), t->cols[c]) != 0)
                row++;
            if (row == PQntuples(res))
                t->missing[t->nmissing++] = t->cols[c];
        }
        PQclear(res);
        if (!t->missing) {
            report(r, "error", "out of memory");
            return false;
        }
    }

    /* tgtype 29 = ROW|INSERT|DELETE|UPDATE, AFTER; 34 = BEFORE|TRUNCATE, STATEMENT */
    res = query(r,
                "SELECT t.tgname = 'dualwrite_truncate', t.tgenabled,"
                " t.tgfoid = to_regprocedure(CASE t.tgname WHEN 'dualwrite_capture'"
                "   THEN 'dualwrite.capture()' ELSE 'dualwrite.reject_truncate()' END)"
                " AND t.tgtype = CASE t.tgname WHEN 'dualwrite_capture' THEN 29 ELSE 34 END"
                " AND t.tgqual IS NULL AND t.tgattr::text = '' AND t.tgconstraint = 0,"
                " t.tgnargs, t.tgargs"
                " FROM pg_catalog.pg_trigger t WHERE t.tgrelid = $1 AND t.tgparentid = 0"
                " AND t.tgname IN ('dualwrite_capture', 'dualwrite_truncate')",
                1, params, what);
    if (!res)
        return false;
    for (int row = 0; row < PQntuples(res); row++) {
        struct trigger_state *s = &t->trig[PQgetvalue(res, row, 0)[0] == 't'];

        s->present = true;
        s->enabled = PQgetvalue(res, row, 1)[0];
        s->shape_ok = PQgetvalue(res, row, 2)[0] == 't';
        if (!parse_args(r, s, PQgetvalue(res, row, 3), PQgetvalue(res, row, 4))) {
            report(r, "error", "out of memory");
            PQclear(res);
            return false;
        }
    }
    PQclear(res);
    return true;
}

/* Tables carrying our triggers that no map names become entries with maps NULL. */
static bool collect_orphans(struct hooks_run *r)
{
    PGresult *res = query(r,
                          "SELECT DISTINCT n.nspname::text COLLATE \"C\", c.relname::text COLLATE \"C\""
                          " FROM pg_catalog.pg_trigger t"
                          " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid"
                          " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                          " WHERE t.tgparentid = 0"
                          " AND t.tgname IN ('dualwrite_capture', 'dualwrite_truncate')"
                          " ORDER BY 1, 2",
                          0, NULL, "list the tables that have dualwrite triggers");
    bool ok = true;

    if (!res)
        return false;
    for (int row = 0; ok && row < PQntuples(res); row++) {
        const char *schema = PQgetvalue(res, row, 0), *name = PQgetvalue(res, row, 1);
        struct hook_table *t;

        if (find_table(r, schema, name))
            continue;
        if (!(t = add_table(r, schema, name))) {
            report(r, "error", "out of memory");
            ok = false;
        } else
            ok = inspect_table(r, t);
    }
    PQclear(res);
    return ok;
}

static bool inspect_all(struct hooks_run *r)
{
    if (!check_extension(r))
        return false;
    for (size_t i = 0; i < r->nmapped; i++)
        if (!inspect_table(r, &r->tables[i]))
            return false;
    return collect_orphans(r);
}

/* ---------------------------------------------------------------- comparing */

/* The arguments trigger k of t should have: maps, then (capture) the columns. */
static size_t wanted_nargs(const struct hook_table *t, int k)
{
    return k == TG_CAPTURE ? 1 + t->ncols : 1;
}

static const char *wanted_arg(const struct hook_table *t, size_t i)
{
    return i == 0 ? t->maps : t->cols[i - 1];
}

static const char not_always[] = "not enabled always";

/* NULL when trigger k is exactly what install makes, else why not. */
static const char *trigger_problem(const struct hook_table *t, int k)
{
    const struct trigger_state *s = &t->trig[k];
    bool cols_ok = true;

    if (!s->present)
        return "missing";
    if (!s->shape_ok)
        return "definition differs";
    if (s->nargs != wanted_nargs(t, k))
        cols_ok = false;
    for (size_t i = 1; cols_ok && i < s->nargs; i++)
        cols_ok = strcmp(s->args[i], wanted_arg(t, i)) == 0;
    if (!cols_ok)
        return k == TG_CAPTURE ? "columns differ" : "definition differs";
    if (s->nargs == 0 || strcmp(s->args[0], t->maps) != 0)
        return "maps differ";
    if (s->enabled != 'A')
        return not_always;
    return NULL;
}

/* The state "status" shows; *ok tells whether it needs nothing. */
static const char *table_state(const struct hook_table *t, char *buf, size_t size, bool *ok)
{
    const char *p[NTRIGGERS];

    *ok = false;
    if (!t->maps)
        return "orphan";
    if (!t->relid[0])
        return "no table";
    if (t->relkind != 'r' && t->relkind != 'p')
        return "not a table";
    if (t->nmissing) {
        snprintf(buf, size, "no column \"%s\"", t->missing[0]);
        return buf;
    }
    for (int k = 0; k < NTRIGGERS; k++)
        p[k] = trigger_problem(t, k);
    if (!t->trig[TG_CAPTURE].present || !t->trig[TG_TRUNCATE].present)
        return "missing";
    for (int k = 0; k < NTRIGGERS; k++)
        if (p[k] && p[k] != not_always) {
            snprintf(buf, size, "stale (%s)", p[k]);
            return buf;
        }
    if (p[TG_CAPTURE] || p[TG_TRUNCATE])
        return "disabled";
    *ok = true;
    return "ok";
}

static const char *mode_name(const struct trigger_state *s)
{
    if (!s->present)
        return "-";
    switch (s->enabled) {
    case 'A': return "always";
    case 'O': return "origin";
    case 'R': return "replica";
    case 'D': return "disabled";
    default: return "?";
    }
}

/* ---------------------------------------------------------------- changing */

static bool create_trigger(struct hooks_run *r, struct hook_table *t, int k)
{
    struct dw_buf sql;
    char what[600];
    bool ok = true;

    dw_buf_init(&sql);
    if (k == TG_CAPTURE)
        dw_buf_printf(&sql, "CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s"
                            " FOR EACH ROW EXECUTE FUNCTION dualwrite.capture(",
                      trigger_name[k], t->ident);
    else
        dw_buf_printf(&sql, "CREATE TRIGGER %s BEFORE TRUNCATE ON %s"
                            " FOR EACH STATEMENT EXECUTE FUNCTION dualwrite.reject_truncate(",
                      trigger_name[k], t->ident);
    for (size_t i = 0; ok && i < wanted_nargs(t, k); i++) {
        const char *arg = wanted_arg(t, i);
        char *lit = PQescapeLiteral(r->conn, arg, strlen(arg));

        if (!lit) {
            report(r, "error", "could not quote \"%s\": %s", arg, PQerrorMessage(r->conn));
            ok = false;
            break;
        }
        dw_buf_printf(&sql, "%s%s", i ? ", " : "", lit);
        PQfreemem(lit);
    }
    dw_buf_puts(&sql, ")");
    snprintf(what, sizeof(what), "create trigger \"%s\" on table \"%s\"", trigger_name[k],
             t->qualified);
    if (ok && dw_buf_failed(&sql)) {
        report(r, "error", "out of memory");
        ok = false;
    }
    ok = ok && exec(r, sql.data, what);
    dw_buf_cleanup(&sql);
    return ok;
}

/* ENABLE ALWAYS, or DROP, trigger k of t. */
static bool alter_trigger(struct hooks_run *r, struct hook_table *t, int k, bool drop)
{
    char sql[1200], what[600];

    if (drop)
        snprintf(sql, sizeof(sql), "DROP TRIGGER %s ON %s", trigger_name[k], t->ident);
    else
        snprintf(sql, sizeof(sql), "ALTER TABLE %s ENABLE ALWAYS TRIGGER %s", t->ident,
                 trigger_name[k]);
    snprintf(what, sizeof(what), "%s trigger \"%s\" on table \"%s\"",
             drop ? "drop" : "enable", trigger_name[k], t->qualified);
    return exec(r, sql, what);
}

/* Brings t to the wanted state; *line says what was done. */
static bool install_table(struct hooks_run *r, struct hook_table *t, char *line, size_t size)
{
    const char *p[NTRIGGERS];
    bool any = false, none = true;

    for (int k = 0; k < NTRIGGERS; k++) {
        p[k] = trigger_problem(t, k);
        any |= p[k] != NULL;
        none &= !t->trig[k].present;
    }
    if (!any) {
        snprintf(line, size, "%s: unchanged", t->qualified);
        return true;
    }
    for (int k = 0; k < NTRIGGERS; k++) {
        if (!p[k])
            continue;
        if (p[k] != not_always) {
            if (t->trig[k].present && !alter_trigger(r, t, k, true))
                return false;
            if (!create_trigger(r, t, k))
                return false;
        }
        if (!alter_trigger(r, t, k, false))
            return false;
    }
    if (none) {
        snprintf(line, size, "%s: created", t->qualified);
        return true;
    }
    for (int k = 0; k < NTRIGGERS; k++) {
        if (!p[k])
            continue;
        if (t->trig[k].present)
            snprintf(line, size, "%s: updated (%s)", t->qualified, p[k]);
        else
            snprintf(line, size, "%s: updated (%s trigger missing)", t->qualified,
                     k == TG_CAPTURE ? "capture" : "truncate");
        break;
    }
    return true;
}

/* ---------------------------------------------------------------- commands */

static void warn_orphans(const struct hooks_run *r)
{
    for (size_t i = r->nmapped; i < r->ntables; i++)
        report(r, "warning", "table \"%s\" has dualwrite triggers but no table map names it",
               r->tables[i].qualified);
    if (r->ntables > r->nmapped)
        report(r, "hint", "\"dwctl hooks remove --all\" drops them.");
}

/* Every mapped table must exist and have every column its maps read. */
static size_t check_tables(const struct hooks_run *r)
{
    size_t problems = 0;

    for (size_t i = 0; i < r->nmapped; i++) {
        const struct hook_table *t = &r->tables[i];
        const struct dw_map *m;

        if (!t->relid[0]) {
            report(r, "error", "table \"%s\" does not exist", t->qualified);
            report(r, "detail", "Table map%s \"%s\" name%s it as source table.",
                   strchr(t->maps, ',') ? "s" : "", t->maps, strchr(t->maps, ',') ? "" : "s");
            problems++;
        } else if (t->relkind != 'r' && t->relkind != 'p') {
            report(r, "error", "\"%s\" is not a table", t->qualified);
            report(r, "detail", "Capture triggers need a table or a partitioned table.");
            problems++;
        }
        for (size_t c = 0; c < t->nmissing; c++) {
            m = map_reading(r, t, t->missing[c]);
            report(r, "error", "column \"%s\" of table \"%s\" does not exist", t->missing[c],
                   t->qualified);
            if (m)
                report(r, "detail", "Table map \"%s\" (%s) reads it.", m->name, m->file);
            problems++;
        }
    }
    return problems;
}

static int do_install(struct hooks_run *r)
{
    char **lines = calloc(r->nmapped + 1, sizeof(*lines));
    size_t changed = 0;
    int rc = DWCTL_EXIT_FAIL;

    if (!lines) {
        report(r, "error", "out of memory");
        return DWCTL_EXIT_FAIL;
    }
    if (!exec(r, "BEGIN", "begin a transaction") ||
        !exec(r, "SELECT pg_advisory_xact_lock(" HOOKS_LOCK_KEY ")", "take the hooks lock") ||
        !inspect_all(r))
        goto done;
    if (!r->extension) {
        report(r, "error", "extension \"dualwrite\" is not installed in the source database");
        report(r, "hint", "Run CREATE EXTENSION dualwrite in the source database as a superuser "
                          "(its module must be installed on the server).");
        goto done;
    }
    if (check_tables(r)) {
        report(r, "hint", "No trigger was changed. Create the missing tables or columns, or fix "
                          "the table maps, then run \"dwctl hooks install\" again.");
        goto done;
    }
    for (size_t i = 0; i < r->nmapped; i++) {
        char line[800];

        if (!install_table(r, &r->tables[i], line, sizeof(line)))
            goto done;
        if (!(lines[i] = strdup(line))) {
            report(r, "error", "out of memory");
            goto done;
        }
        changed += strstr(line, ": unchanged") == NULL;
    }
    if (!exec(r, "COMMIT", "commit the trigger changes"))
        goto done;
    for (size_t i = 0; i < r->nmapped; i++)
        printf("%s\n", lines[i]);
    if (changed)
        printf("installed: %zu of %zu table%s changed\n", changed, r->nmapped,
               r->nmapped == 1 ? "" : "s");
    else
        printf("nothing to change: all %zu table%s up to date\n", r->nmapped,
               r->nmapped == 1 ? "" : "s");
    warn_orphans(r);
    rc = DWCTL_EXIT_OK;
done:
    for (size_t i = 0; i < r->nmapped; i++)
        free(lines[i]);
    free(lines);
    return rc;
}

static int do_remove(struct hooks_run *r)
{
    size_t last = r->nmapped, removed = 0;

    if (!exec(r, "BEGIN", "begin a transaction") ||
        !exec(r, "SELECT pg_advisory_xact_lock(" HOOKS_LOCK_KEY ")", "take the hooks lock") ||
        !inspect_all(r))
        return DWCTL_EXIT_FAIL;
    if (r->all)
        last = r->ntables;
    for (size_t i = 0; i < last; i++)
        for (int k = 0; k < NTRIGGERS; k++)
            if (r->tables[i].trig[k].present && !alter_trigger(r, &r->tables[i], k, true))
                return DWCTL_EXIT_FAIL;
    if (!exec(r, "COMMIT", "commit the trigger changes"))
        return DWCTL_EXIT_FAIL;
    for (size_t i = 0; i < last; i++) {
        const struct hook_table *t = &r->tables[i];
        bool had = t->trig[TG_CAPTURE].present || t->trig[TG_TRUNCATE].present;

        removed += had;
        printf("%s: %s%s\n", t->qualified,
               had ? "removed" : t->relid[0] ? "nothing to remove" : "no table",
               had && !t->maps ? " (no map names it)" : "");
    }
    if (removed)
        printf("removed: triggers dropped from %zu table%s\n", removed, removed == 1 ? "" : "s");
    else
        printf("nothing to remove\n");
    if (!r->all)
        warn_orphans(r);
    return DWCTL_EXIT_OK;
}

static int do_status(struct hooks_run *r)
{
    const char *head[5] = {"TABLE", "MAPS", "CAPTURE", "TRUNCATE", "STATE"};
    int w[5];
    size_t bad = 0;

    /* one snapshot for all the catalog reads */
    if (!exec(r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin a transaction") ||
        !inspect_all(r))
        return DWCTL_EXIT_USAGE;
    for (int c = 0; c < 5; c++)
        w[c] = (int) strlen(head[c]);
    for (size_t i = 0; i < r->ntables; i++) {
        const struct hook_table *t = &r->tables[i];
        const char *cell[4] = {t->qualified, t->maps ? t->maps : "-",
                               mode_name(&t->trig[TG_CAPTURE]), mode_name(&t->trig[TG_TRUNCATE])};

        for (int c = 0; c < 4; c++)
            if ((int) strlen(cell[c]) > w[c])
                w[c] = (int) strlen(cell[c]);
    }
    printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1], w[2], head[2], w[3],
           head[3], head[4]);
    for (size_t i = 0; i < r->ntables; i++) {
        const struct hook_table *t = &r->tables[i];
        char buf[600];
        bool ok;
        const char *state = table_state(t, buf, sizeof(buf), &ok);

        bad += !ok;
        printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], t->qualified, w[1], t->maps ? t->maps : "-",
               w[2], mode_name(&t->trig[TG_CAPTURE]), w[3], mode_name(&t->trig[TG_TRUNCATE]),
               state);
    }
    (void) exec(r, "ROLLBACK", "end the transaction");
    if (!r->extension)
        printf("extension \"dualwrite\" is not installed in the source database\n");
    if (bad)
        printf("%zu of %zu table%s not ok: run \"dwctl hooks install\"%s\n", bad, r->ntables,
               r->ntables == 1 ? "" : "s",
               r->ntables > r->nmapped ? " (orphans: \"dwctl hooks remove --all\")" : "");
    else
        printf("all %zu table%s ok\n", r->ntables, r->ntables == 1 ? "" : "s");
    return bad ? DWCTL_EXIT_FAIL : DWCTL_EXIT_OK;
}

/* ---------------------------------------------------------------- entry */

static bool load(struct hooks_run *r, const char *path)
{
    struct dw_error err;
    char *errors = NULL;
    dw_errcode rc;

    dw_error_clear(&err);
    rc = dw_config_load(path, &r->cfg, &errors, &err);
    if (rc == DW_OK) {
        free(errors);
        errors = NULL;
        rc = dw_mapset_load((const char *const *) r->cfg->map_paths, r->cfg->nmap_paths, &r->set,
                            &errors, &err);
    }
    if (rc == DW_OK)
        return true;
    if (errors && errors[0]) {
        fputs(errors, stderr);
        if (errors[strlen(errors) - 1] != '\n')
            fputc('\n', stderr);
    }
    report(r, "error", "%s", err.message);
    free(errors);
    return false;
}

static bool connect_source(struct hooks_run *r)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {r->cfg->source_conninfo, "dwctl", NULL};

    r->conn = PQconnectdbParams(keys, values, 1);
    if (!r->conn) {
        report(r, "error", "out of memory");
        return false;
    }
    if (PQstatus(r->conn) != CONNECTION_OK) {
        report_pg(r, NULL, "connect to the source database");
        return false;
    }
    PQsetNoticeReceiver(r->conn, notice_receiver, r);
    /* as pg_dump does: nothing from the user's search_path can stand in for a built-in */
    return exec(r,
                "SELECT pg_catalog.set_config('search_path', 'pg_catalog', false),"
                " pg_catalog.set_config('client_min_messages', 'warning', false)",
                "set up the session");
}

static int usage_error(const char *prefix, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", prefix);
    fprintf(stderr, fmt, arg);
    fputs("\n\n", stderr);
    dwctl_hooks_usage(stderr);
    return DWCTL_EXIT_USAGE;
}

int dwctl_hooks_run(const struct dwctl_context *ctx, int argc, char **argv)
{
    static const char *const verbs[] = {"install", "remove", "status"};
    static const char *const progs[] = {"dwctl hooks install", "dwctl hooks remove",
                                        "dwctl hooks status"};
    struct hooks_run r = {.prog = "dwctl hooks"};
    const char *config = ctx->config_path, *verb = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            dwctl_hooks_usage(stdout);
            return DWCTL_EXIT_OK;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (++i >= argc)
                return usage_error(r.prog, "option \"%s\" needs a file name", a);
            config = argv[i];
        } else if (strncmp(a, "--config=", 9) == 0)
            config = a + 9;
        else if (strcmp(a, "--all") == 0)
            r.all = true;
        else if (a[0] == '-')
            return usage_error(r.prog, "unknown option \"%s\"", a);
        else if (verb)
            return usage_error(r.prog, "unexpected argument \"%s\"", a);
        else
            verb = a;
    }
    if (!verb)
        return usage_error(r.prog, "%s", "missing command: install, remove or status");
    for (r.verb = VERB_INSTALL; r.verb <= VERB_STATUS; r.verb++)
        if (strcmp(verb, verbs[r.verb]) == 0)
            break;
    if (r.verb > VERB_STATUS)
        return usage_error(r.prog, "unknown command \"%s\"", verb);
    r.prog = progs[r.verb];
    if (r.all && r.verb != VERB_REMOVE)
        return usage_error(r.prog, "%s", "option \"--all\" is only valid with \"remove\"");
    if (!config)
        return usage_error(r.prog, "%s", "missing configuration file (-c FILE)");

    dw_arena_init(&r.arena, 8192);
    rc = r.verb == VERB_STATUS ? DWCTL_EXIT_USAGE : DWCTL_EXIT_FAIL;
    if (!load(&r, config))
        rc = DWCTL_EXIT_USAGE;
    else if (!collect_mapped(&r))
        report(&r, "error", "out of memory");
    else if (connect_source(&r)) {
        if (r.verb == VERB_INSTALL)
            rc = do_install(&r);
        else if (r.verb == VERB_REMOVE)
            rc = do_remove(&r);
        else
            rc = do_status(&r);
    }
    if (fflush(stdout) != 0) {
        report(&r, "error", "could not write the output");
        rc = r.verb == VERB_STATUS ? DWCTL_EXIT_USAGE : DWCTL_EXIT_FAIL;
    }
    /* an open transaction is rolled back when the connection closes */
    PQfinish(r.conn);
    for (size_t i = 0; i < r.ntables; i++)
        free(r.tables[i].cols);
    free(r.tables);
    dw_arena_cleanup(&r.arena);
    dw_mapset_free(r.set);
    dw_config_free(r.cfg);
    return rc;
}
