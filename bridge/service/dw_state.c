/*
 * Building, checking, sharing and swapping the service state.
 *
 * The installed state is one pointer guarded by a mutex that is held only to
 * take a reference or to swap; the reference count itself is atomic, so a
 * request returns its state without touching the mutex.  Whoever drops the
 * last reference frees the state, closing its pools: by then no batch can
 * hold one of its sessions, since every checkout is inside a reference.
 */
#include "bridge/service/dw_state.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_log.h"

static pthread_mutex_t installed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dw_state *installed;
static unsigned long next_generation = 1;

static void state_free(struct dw_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nconns; i++) {
        dw_pool_free(st->conns[i].workers);
        dw_pool_free(st->conns[i].settle);
    }
    free(st->conns);
    dw_mapset_free(st->maps);
    dw_config_free(st->config);
    free(st);
}

void dw_state_ref(struct dw_state *st)
{
    if (st)
        atomic_fetch_add(&st->refs, 1);
}

void dw_state_release(struct dw_state *st)
{
    if (st && atomic_fetch_sub(&st->refs, 1) == 1)
        state_free(st);
}

struct dw_state *dw_state_acquire(void)
{
    struct dw_state *st;

    pthread_mutex_lock(&installed_lock);
    st = installed;
    dw_state_ref(st);
    pthread_mutex_unlock(&installed_lock);
    return st;
}

void dw_state_install(struct dw_state *st)
{
    struct dw_state *old;

    pthread_mutex_lock(&installed_lock);
    old = installed;
    if (st)
        st->generation = next_generation++;
    installed = st;
    pthread_mutex_unlock(&installed_lock);
    dw_state_release(old);
}

void dw_state_uninstall(void)
{
    dw_state_install(NULL);
}

struct dw_conn_state *dw_state_conn(struct dw_state *st, const char *name)
{
    if (!st || !name)
        return NULL;
    for (size_t i = 0; i < st->nconns; i++) {
        if (strcmp(st->conns[i].name, name) == 0)
            return &st->conns[i];
    }
    return NULL;
}

static void list_connectors(struct dw_buf *b, const struct dw_config *cfg)
{
    if (cfg->nconnectors == 0) {
        dw_buf_puts(b, "none");
        return;
    }
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        if (i)
            dw_buf_puts(b, ", ");
        dw_buf_printf(b, "\"%s\"", cfg->connectors[i].cfg.name);
    }
}

/* Append errors (lines, possibly without a final newline) to b. */
static void add_lines(struct dw_buf *b, const char *lines)
{
    size_t n;

    if (!lines || !*lines)
        return;
    n = strlen(lines);
    dw_buf_append(b, lines, n);
    if (lines[n - 1] != '\n')
        dw_buf_putc(b, '\n');
}

/* Hand the collected lines to the caller (NULL when there are none). */
static char *take_lines(struct dw_buf *b)
{
    if (b->len == 0 || dw_buf_failed(b)) {
        dw_buf_cleanup(b);
        return NULL;
    }
    return dw_buf_take(b);
}

dw_errcode dw_state_load(const char *config_path, struct dw_state **out, char **errors,
                         struct dw_error *err)
{
    struct dw_state *st = NULL;
    struct dw_config *cfg = NULL;
    struct dw_mapset *maps = NULL;
    struct dw_buf lines;
    char *sub = NULL;
    size_t nbad = 0;
    dw_errcode rc;

    *out = NULL;
    *errors = NULL;
    dw_buf_init(&lines);

    rc = dw_config_load(config_path, &cfg, &sub, err);
    if (rc != DW_OK) {
        if (sub)
            add_lines(&lines, sub);
        else
            dw_buf_printf(&lines, "%s\n", err->message);
        free(sub);
        *errors = take_lines(&lines);
        return rc;
    }

    rc = dw_mapset_load((const char *const *) cfg->map_paths, cfg->nmap_paths, &maps, &sub, err);
    if (rc != DW_OK) {
        if (sub)
            add_lines(&lines, sub);
        else
            dw_buf_printf(&lines, "%s\n", err->message);
        free(sub);
        dw_config_free(cfg);
        *errors = take_lines(&lines);
        return rc;
    }

    /* Every map must name a configured connector of a type this build has. */
    for (size_t i = 0; i < maps->nmaps; i++) {
        const struct dw_map *m = &maps->maps[i];
        const struct dw_connector_entry *ce = dw_config_connector(cfg, m->connector);

        if (!ce) {
            dw_buf_printf(&lines, "%s: /target/connector: table map \"%s\" uses connector \"%s\", which "
                                  "is not configured in %s (configured: ", m->file, m->name, m->connector,
                          cfg->file);
            list_connectors(&lines, cfg);
            dw_buf_puts(&lines, ")\n");
            nbad++;
        } else if (!dw_connector_find(ce->cfg.type)) {
            dw_buf_printf(&lines, "%s: /connectors/%s/type: connector type \"%s\" is not in this build\n",
                          cfg->file, ce->cfg.name, ce->cfg.type);
            nbad++;
        }
    }
    if (nbad) {
        dw_error_set(err, DW_ERR_CONFIG, "%zu table map%s cannot be used with %s", nbad,
                     nbad == 1 ? "" : "s", cfg->file);
        dw_mapset_free(maps);
        dw_config_free(cfg);
        *errors = take_lines(&lines);
        return DW_ERR_CONFIG;
    }

    st = calloc(1, sizeof(*st));
    if (st && cfg->nconnectors)
        st->conns = calloc(cfg->nconnectors, sizeof(*st->conns));
    if (!st || (cfg->nconnectors && !st->conns)) {
        if (st)
            free(st->conns);
        free(st);
        dw_mapset_free(maps);
        dw_config_free(cfg);
        dw_buf_cleanup(&lines);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    atomic_init(&st->refs, 1);
    st->config = cfg;
    st->maps = maps;
    st->nconns = cfg->nconnectors;
    for (size_t i = 0; i < cfg->nconnectors; i++) {
        struct dw_conn_state *c = &st->conns[i];
        const struct dw_connector_entry *ce = &cfg->connectors[i];

        c->name = ce->cfg.name;
        c->entry = ce;
        c->ops = dw_connector_find(ce->cfg.type);
        if (!c->ops) {
            dw_buf_printf(&lines, "%s: /connectors/%s/type: connector type \"%s\" is not in this build\n",
                          cfg->file, ce->cfg.name, ce->cfg.type);
            nbad++;
            continue;
        }
        int size = ce->pool_size > 0 ? ce->pool_size : 8;

        c->workers = dw_pool_new(&ce->cfg, c->ops, size, "worker");
        /* outcome messages arrive as fast as batches; COMMIT PREPARED is short but waits for a flush */
        c->settle = dw_pool_new(&ce->cfg, c->ops, size / 2 > DW_SETTLE_POOL_MIN ? size / 2 : DW_SETTLE_POOL_MIN,
                                "settle");
        if (!c->workers || !c->settle) {
            state_free(st);
            dw_buf_cleanup(&lines);
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        }
    }
    if (nbad) {
        dw_error_set(err, DW_ERR_CONFIG, "%s: %zu connector%s cannot be used", cfg->file, nbad,
                     nbad == 1 ? "" : "s");
        state_free(st);
        *errors = take_lines(&lines);
        return DW_ERR_CONFIG;
    }
    dw_buf_cleanup(&lines);
    *out = st;
    return DW_OK;
}

/* Target columns of a map: every field's target (the key columns are among them). */
static const char **map_columns(const struct dw_map *m)
{
    const char **cols = calloc(m->nfields ? m->nfields : 1, sizeof(*cols));

    if (!cols)
        return NULL;
    for (size_t f = 0; f < m->nfields; f++)
        cols[f] = m->fields[f].target;
    return cols;
}

dw_errcode dw_state_check_targets(struct dw_state *st, char **errors, struct dw_error *err)
{
    struct dw_buf lines;
    size_t nmapbad = 0, nconnbad = 0;

    *errors = NULL;
    dw_buf_init(&lines);
    for (size_t i = 0; i < st->nconns; i++) {
        struct dw_conn_state *c = &st->conns[i];
        struct dw_session *s = NULL;
        struct dw_error e;
        size_t nmaps = 0;

        dw_error_clear(&e);
        if (c->ops->open(&c->entry->cfg, &s, &e) != DW_OK) {
            dw_buf_printf(&lines, "connector \"%s\": %s%s%s\n", c->name, e.message, e.detail[0] ? ": " : "",
                          e.detail);
            nconnbad++;
            continue;
        }
        c->checked = true;
        c->two_phase = s->two_phase;
        for (size_t m = 0; m < st->maps->nmaps; m++) {
            const struct dw_map *map = &st->maps->maps[m];
            const char **cols;

            if (strcmp(map->connector, c->name) != 0)
                continue;
            nmaps++;
            if (!c->ops->check_table)
                continue;
            cols = map_columns(map);
            if (!cols) {
                c->ops->close(s);
                dw_buf_cleanup(&lines);
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            }
            dw_error_clear(&e);
            if (c->ops->check_table(s, map->target_table, cols, map->nfields, &e) == DW_OK &&
                c->ops->check_key && !s->broken)
                (void) c->ops->check_key(s, map->target_table, (const char *const *) map->target_key,
                                         map->nkey, &e);
            if (dw_error_is_set(&e)) {
                dw_buf_printf(&lines, "%s: table map \"%s\", connector \"%s\": %s", map->file, map->name,
                              c->name, e.message);
                if (e.hint[0])
                    dw_buf_printf(&lines, " (%s)", e.hint);
                dw_buf_putc(&lines, '\n');
                if (e.code == DW_ERR_CONNECT || s->broken)
                    nconnbad++;
                else
                    nmapbad++;
            }
            free(cols);
            if (s->broken)
                break;
        }
        if (s->broken) {
            c->ops->close(s);
            continue;
        }
        dw_info("connector \"%s\" (%s): %s (commit \"%s\" configured); %zu table map%s; pool of %d sessions",
                c->name, c->entry->cfg.type,
                c->two_phase ? "two-phase commit: PREPARE TRANSACTION, then COMMIT PREPARED once the source "
                               "has committed" : "one-phase commit",
                dw_commit_mode_name(c->entry->cfg.commit), nmaps, nmaps == 1 ? "" : "s",
                c->entry->pool_size > 0 ? c->entry->pool_size : 8);
        if (!c->two_phase)
            dw_warn("connector \"%s\": one-phase commit leaves a window between target and source commit "
                    "(DESIGN.md G4)", c->name);
        dw_pool_adopt(c->workers, s);
    }
    *errors = take_lines(&lines);
    if (nmapbad)
        return dw_error_set(err, DW_ERR_CONFIG, "%zu table map%s do%s not fit the target", nmapbad,
                            nmapbad == 1 ? "" : "s", nmapbad == 1 ? "es" : "");
    if (nconnbad)
        return dw_error_set(err, DW_ERR_CONNECT, "%zu connector%s could not be checked", nconnbad,
                            nconnbad == 1 ? "" : "s");
    return DW_OK;
}
