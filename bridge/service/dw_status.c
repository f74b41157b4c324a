/*
 * The status and health documents.
 *
 * Both are written with the wire encoder's string escaping rather than a JSON
 * library: the documents are flat, and every string in them is either ours or
 * comes from loaded configuration (already valid UTF-8).  Health is what the
 * service already knows (the last open or breakage of each pool, the
 * resolver's last contact with the source); it never blocks on a target, so
 * a load balancer or systemd watchdog can poll it freely.
 *
 * Each connector's "throttle" object shows its sync limits in use: the
 * maximum as configured (0 = off), the current use and the waits and
 * refusals so far, read from the connector's limiter (dw_throttle.h).
 */
#include "bridge/service/dw_status.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_pipeline.h"
#include "bridge/service/dw_pool.h"
#include "bridge/service/dw_resolver.h"
#include "bridge/service/dw_settler.h"
#include "bridge/service/dw_state.h"
#include "bridge/service/dw_throttle.h"

/* A JSON string; bytes that are not UTF-8 (a gid on the target can hold anything) become '?'. */
static void put_str(struct dw_buf *out, const char *s)
{
    size_t len, bad;
    char *copy;

    if (!s) {
        dw_buf_puts(out, "null");
        return;
    }
    len = strlen(s);
    if (dw_utf8_validate(s, len, &bad) == DW_UTF8_OK) {
        dw_wire_put_string(out, s, len);
        return;
    }
    copy = strdup(s);
    if (!copy) {
        out->failed = true;
        return;
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n;

        if (dw_utf8_decode(copy + i, len - i, &cp, &n) == DW_UTF8_OK) {
            i += n;
        } else {
            copy[i++] = '?';
        }
    }
    dw_wire_put_string(out, copy, len);
    free(copy);
}

static void put_key(struct dw_buf *out, bool *first, const char *key)
{
    if (!*first)
        dw_buf_putc(out, ',');
    *first = false;
    put_str(out, key);
    dw_buf_putc(out, ':');
}

static const char *health_name(dw_pool_health h)
{
    switch (h) {
    case DW_POOL_UP: return "up";
    case DW_POOL_DOWN: return "down";
    case DW_POOL_UNKNOWN: break;
    }
    return "unknown";
}

static void render_pool(struct dw_buf *out, const struct dw_pool_stats *ps)
{
    dw_buf_printf(out, "{\"size\":%d,\"open\":%d,\"busy\":%d,\"waiting\":%d}", ps->size, ps->open, ps->busy,
                  ps->waiting);
}

static void render_limits(struct dw_buf *out, const struct dw_limits *l)
{
    dw_buf_printf(out, "{\"records_per_transaction\":%ld,\"bytes_per_batch\":%ld,\"requests_per_window\":%ld,"
                       "\"window_s\":%ld,\"execution_s_per_window\":%ld,\"concurrent\":%ld}",
                  l->records_per_transaction, l->bytes_per_batch, l->requests_per_window, l->window_s,
                  l->execution_s_per_window, l->concurrent);
}

static void render_one_limit(struct dw_buf *out, const struct dw_throttle_stats *ts, dw_throttle_limit l,
                             long max, double use)
{
    put_str(out, dw_throttle_limit_name(l));
    dw_buf_printf(out, ":{\"max\":%ld,\"use\":%.3f,\"waits\":%llu,\"wait_ms\":%llu,\"rejections\":%llu}", max, use,
                  (unsigned long long) ts->waits[l], (unsigned long long) ts->wait_ms[l],
                  (unsigned long long) ts->rejections[l]);
}

/* The limits as configured, the use as the limiter counts it. */
static void render_throttle(struct dw_buf *out, const struct dw_state *st, const struct dw_conn_state *c)
{
    const struct dw_limits *l = &c->entry->limits;
    struct dw_throttle *th = dw_pipeline_throttle(st, c);
    struct dw_throttle_stats ts;

    memset(&ts, 0, sizeof(ts));
    if (th)
        dw_throttle_stats(th, &ts);
    dw_buf_printf(out, "{\"window_s\":%ld,", l->window_s);
    render_one_limit(out, &ts, DW_THROTTLE_REQUESTS, l->window_s > 0 ? l->requests_per_window : 0,
                     (double) ts.requests_in_window);
    dw_buf_putc(out, ',');
    render_one_limit(out, &ts, DW_THROTTLE_EXECUTION, l->window_s > 0 ? l->execution_s_per_window : 0,
                     (double) ts.exec_ms_in_window / 1e3);
    dw_buf_putc(out, ',');
    render_one_limit(out, &ts, DW_THROTTLE_CONCURRENT, l->concurrent, (double) ts.in_use);
    dw_buf_putc(out, ',');
    render_one_limit(out, &ts, DW_THROTTLE_TARGET, 0, (double) ts.paused_ms / 1e3);
    dw_buf_printf(out, ",\"waiting\":%ld,\"paused_ms\":%lld,\"target_throttled\":%llu,\"admitted\":%llu}",
                  ts.waiting, (long long) ts.paused_ms, (unsigned long long) ts.target_pauses,
                  (unsigned long long) ts.admitted);
}

static void render_connectors(struct dw_buf *out, struct dw_state *st)
{
    dw_buf_putc(out, '[');
    for (size_t i = 0; st && i < st->nconns; i++) {
        const struct dw_conn_state *c = &st->conns[i];
        struct dw_pool_stats ps, ss;
        size_t nmaps = 0;

        dw_pool_stats(c->workers, &ps);
        dw_pool_stats(c->settle, &ss);
        for (size_t m = 0; m < st->maps->nmaps; m++)
            nmaps += strcmp(st->maps->maps[m].connector, c->name) == 0;
        if (i)
            dw_buf_putc(out, ',');
        dw_buf_puts(out, "{\"name\":");
        put_str(out, c->name);
        dw_buf_puts(out, ",\"type\":");
        put_str(out, c->entry->cfg.type);
        dw_buf_puts(out, ",\"commit\":");
        put_str(out, dw_commit_mode_name(c->entry->cfg.commit));
        dw_buf_printf(out, ",\"two_phase\":%s,\"maps\":%zu,\"state\":", c->two_phase ? "true" : "false", nmaps);
        put_str(out, health_name(ps.health));
        if (ps.last_error[0]) {
            dw_buf_puts(out, ",\"error\":");
            put_str(out, ps.last_error);
        }
        dw_buf_puts(out, ",\"pool\":");
        render_pool(out, &ps);
        dw_buf_puts(out, ",\"settle_pool\":");
        render_pool(out, &ss);
        dw_buf_puts(out, ",\"limits\":");
        render_limits(out, &c->entry->limits);
        dw_buf_puts(out, ",\"throttle\":");
        render_throttle(out, st, c);
        dw_buf_putc(out, '}');
    }
    dw_buf_putc(out, ']');
}

static void render_maps(struct dw_buf *out, struct dw_state *st)
{
    dw_buf_putc(out, '[');
    for (size_t i = 0; st && i < st->maps->nmaps; i++) {
        const struct dw_map *m = &st->maps->maps[i];
        struct dw_metrics_map_counts mc;

        dw_metrics_map_counts(m->name, &mc);
        if (i)
            dw_buf_putc(out, ',');
        dw_buf_puts(out, "{\"name\":");
        put_str(out, m->name);
        dw_buf_puts(out, ",\"source\":");
        put_str(out, m->source_table);
        dw_buf_puts(out, ",\"connector\":");
        put_str(out, m->connector);
        dw_buf_puts(out, ",\"target\":");
        put_str(out, m->target_table);
        dw_buf_printf(out, ",\"fields\":%zu,\"batches\":%llu,\"failed\":%llu,\"rows\":%llu,\"file\":",
                      m->nfields, (unsigned long long) mc.batches, (unsigned long long) mc.failed,
                      (unsigned long long) mc.rows);
        put_str(out, m->file);
        dw_buf_putc(out, '}');
    }
    dw_buf_putc(out, ']');
}

static void render_in_doubt(struct dw_buf *out)
{
    struct dw_indoubt_info *list = NULL;
    size_t n = dw_outcome_list(&list);
    int64_t now = dw_now_ms();

    dw_buf_putc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            dw_buf_putc(out, ',');
        dw_buf_puts(out, "{\"id\":");
        put_str(out, list[i].id);
        dw_buf_puts(out, ",\"connector\":");
        put_str(out, list[i].connector);
        dw_buf_puts(out, ",\"xid\":");
        put_str(out, list[i].xid[0] ? list[i].xid : NULL);
        dw_buf_puts(out, ",\"state\":");
        put_str(out, list[i].state == DW_INDOUBT_PREPARING ? "preparing" : "prepared");
        dw_buf_puts(out, ",\"decision\":");
        put_str(out, list[i].decision == DW_DECISION_NONE ? NULL : dw_decision_name(list[i].decision));
        dw_buf_printf(out, ",\"discovered\":%s,\"needs_human\":%s,\"age_ms\":%lld}",
                      list[i].discovered ? "true" : "false", list[i].reported ? "true" : "false",
                      (long long) (now - list[i].since_ms));
    }
    dw_buf_putc(out, ']');
    free(list);
}

static void render_counters(struct dw_buf *out)
{
    struct dw_metrics_totals t;

    dw_metrics_totals(&t);
    dw_buf_puts(out, "{\"batches\":{");
    for (int s = DW_VERDICT_PREPARED; s <= DW_VERDICT_UNAVAILABLE; s++) {
        put_str(out, dw_verdict_status_name((dw_verdict_status) s));
        dw_buf_printf(out, ":%llu,", (unsigned long long) t.batches_by_status[s]);
    }
    dw_buf_printf(out, "\"invalid\":%llu},\"rows\":%llu,\"in_flight\":%ld,\"in_doubt\":%zu,"
                       "\"outcomes_queued\":%zu,\"settled\":{\"commit\":%llu,\"rollback\":%llu}}",
                  (unsigned long long) t.batches_invalid, (unsigned long long) t.rows, t.in_flight,
                  dw_outcome_count(), dw_settler_queued(), (unsigned long long) t.settled_commit,
                  (unsigned long long) t.settled_rollback);
}

static void render_source(struct dw_buf *out, struct dw_state *st)
{
    struct dw_resolver_info ri;

    dw_resolver_info(&ri);
    dw_buf_puts(out, "{\"system\":");
    put_str(out, ri.source_system[0] ? ri.source_system : (st ? st->config->source_system : NULL));
    dw_buf_printf(out, ",\"reachable\":%s", ri.passes_done ? (ri.source_up ? "true" : "false") : "null");
    if (ri.last_error[0]) {
        dw_buf_puts(out, ",\"error\":");
        put_str(out, ri.last_error);
    }
    dw_buf_putc(out, '}');
}

void dw_status_render(struct dw_buf *out, bool stopping)
{
    struct dw_state *st = dw_state_acquire();
    bool first = true;

    dw_buf_putc(out, '{');
    put_key(out, &first, "status");
    put_str(out, stopping ? "stopping" : "running");
    put_key(out, &first, "version");
    put_str(out, DW_VERSION);
    put_key(out, &first, "pid");
    dw_buf_printf(out, "%ld", (long) getpid());
    put_key(out, &first, "uptime_s");
    dw_buf_printf(out, "%.3f", dw_metrics_uptime_s());
    put_key(out, &first, "config");
    put_str(out, st ? st->config->file : NULL);
    put_key(out, &first, "generation");
    dw_buf_printf(out, "%lu", st ? st->generation : 0UL);
    put_key(out, &first, "source");
    render_source(out, st);
    put_key(out, &first, "maps");
    render_maps(out, st);
    put_key(out, &first, "connectors");
    render_connectors(out, st);
    put_key(out, &first, "counters");
    render_counters(out);
    put_key(out, &first, "in_doubt");
    render_in_doubt(out);
    dw_buf_putc(out, '}');
    dw_state_release(st);
}

int dw_status_health(struct dw_buf *out, bool stopping)
{
    struct dw_state *st = dw_state_acquire();
    struct dw_resolver_info ri;
    bool ok = !stopping && st;

    dw_resolver_info(&ri);
    dw_buf_puts(out, "{\"connectors\":{");
    for (size_t i = 0; st && i < st->nconns; i++) {
        struct dw_pool_stats ps;

        dw_pool_stats(st->conns[i].workers, &ps);
        if (ps.health == DW_POOL_DOWN)
            ok = false;
        if (i)
            dw_buf_putc(out, ',');
        put_str(out, st->conns[i].name);
        dw_buf_puts(out, ":{\"state\":");
        put_str(out, health_name(ps.health));
        dw_buf_printf(out, ",\"two_phase\":%s", st->conns[i].two_phase ? "true" : "false");
        if (ps.last_error[0]) {
            dw_buf_puts(out, ",\"error\":");
            put_str(out, ps.last_error);
        }
        dw_buf_putc(out, '}');
    }
    dw_buf_puts(out, "},\"source\":");
    if (ri.passes_done && !ri.source_up)
        ok = false;
    render_source(out, st);
    dw_buf_puts(out, ",\"status\":");
    put_str(out, stopping ? "stopping" : ok ? "ok" : "unavailable");
    if (!ok) {
        dw_buf_puts(out, ",\"message\":");
        put_str(out, stopping ? "the bridge is shutting down"
                     : !st ? "the bridge is starting"
                     : "a target or the source is not reachable");
    }
    dw_buf_putc(out, '}');
    dw_state_release(st);
    return ok ? 200 : 503;
}
