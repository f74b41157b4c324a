/*
 * The batch pipeline: pre-validation, operation, verdict.
 *
 * Pre-validation touches no target: a batch that is malformed, comes from
 * another source, breaks a map rule or a per-transaction sync limit is
 * answered before a session is even taken (G6).  The operation then runs on
 * one pooled session as one target transaction (G2).  A two-phase batch is
 * entered in the in-doubt table before PREPARE is sent, so that an outcome
 * arriving while the worker is still busy (the source gave up waiting) is
 * recorded and applied as soon as PREPARE returns; if the connection breaks
 * mid-way the batch stays in the table as "maybe prepared" and the resolver
 * finds out.
 *
 * Between the two, the batch is admitted through its connector's limiter
 * (dw_throttle.h): window and concurrency limits make it wait while its
 * deadline allows, else it is answered 429 with a retry-after.  A target
 * that throttles by itself (DW_ERR_THROTTLED: nothing was applied) pauses
 * the connector for the time it asked, and the batch is tried once more if
 * that pause ends before its deadline.
 *
 * The whole request is one log line: id, maps, rows, status, elapsed time,
 * and on failure the stage, map, change and SQLSTATE; the message itself may
 * quote row values (keys, the target's detail), so it is logged at debug.
 */
#include "bridge/service/dw_pipeline.h"

#include <stdio.h>
#include <string.h>
#ifdef DW_FAULT_INJECTION
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#endif

#include "bridge/common/dw_log.h"
#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"
#include "bridge/service/dw_metrics.h"
#include "bridge/service/dw_outcome.h"
#include "bridge/service/dw_settler.h"
#include "bridge/service/dw_state.h"
#include "bridge/service/dw_throttle.h"
#include "maps/dw_map.h"

/* PostgreSQL's GIDSIZE is 200 with the NUL; leave room for the "dw:" prefix. */
#define MAX_ID_LEN 190
/* Waiting for a session when the batch has no deadline. */
#define DEFAULT_WAIT_MS 30000
/* How long a target that throttles without saying for how long pauses its connector. */
#define DEFAULT_TARGET_PAUSE_MS 1000

/* Everything one batch accumulates for its verdict, log line and metrics. */
struct run {
    int64_t t0_us;
    struct dw_arena *arena;
    struct dw_state *st;
    const struct dw_batch *batch;
    const struct dw_oplist *ops;
    const char *connector;
    struct dw_verdict v;
    int http;
    struct dw_error err;
    bool invalid;             /* not decodable: counted apart */
    int64_t throttle_wait_ms; /* time spent waiting for admission */
};

/* s itself when it is valid UTF-8, else an arena copy with bad bytes as '?'. */
static const char *clean_utf8(struct dw_arena *arena, const char *s)
{
    size_t len, bad, i = 0;
    char *copy;

    if (!s)
        return NULL;
    len = strlen(s);
    if (dw_utf8_validate(s, len, &bad) == DW_UTF8_OK)
        return s;
    copy = dw_arena_strndup(arena, s, len);
    if (!copy)
        return "(message not valid UTF-8)";
    while (i < len) {
        uint32_t cp;
        size_t n;

        if (dw_utf8_decode(copy + i, len - i, &cp, &n) == DW_UTF8_OK) {
            i += n;
        } else {
            copy[i] = '?';
            i++;
        }
    }
    return copy;
}

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

static void fail(struct run *r, int http, dw_verdict_status status, const char *stage)
{
    r->http = http;
    r->v.status = status;
    r->v.stage = stage;
    r->v.message = clean_utf8(r->arena, r->err.message[0] ? r->err.message : "unknown error");
    r->v.detail = clean_utf8(r->arena, nonempty(r->err.detail));
    r->v.hint = clean_utf8(r->arena, nonempty(r->err.hint));
}

/* The distinct maps of a batch's operations and their operation counts. */
struct map_count {
    const char *map;
    size_t rows;
};

/*
 * Fill r->maps: a batch touches few maps, so a linear search per operation
 * is cheap; ops of one map share the mapset's name pointer, so compare that
 * first.  Falls back to nothing (the log says "-") when out of memory.
 */
static size_t count_maps(struct run *r, struct map_count **out)
{
    struct map_count *mc;
    size_t n = 0;

    *out = NULL;
    if (!r->ops || r->ops->nops == 0)
        return 0;
    mc = dw_arena_alloc(r->arena, sizeof(*mc) * (r->st ? r->st->maps->nmaps + 1 : r->ops->nops));
    if (!mc)
        return 0;
    for (size_t i = 0; i < r->ops->nops; i++) {
        const char *m = r->ops->ops[i].map;
        size_t k;

        for (k = 0; k < n; k++) {
            if (mc[k].map == m || strcmp(mc[k].map, m) == 0)
                break;
        }
        if (k == n) {
            if (r->st && n == r->st->maps->nmaps + 1)
                continue;   /* cannot happen: every op comes from a loaded map */
            mc[n].map = m;
            mc[n].rows = 0;
            n++;
        }
        mc[k].rows++;
    }
    *out = mc;
    return n;
}

static void count(const struct run *r, const struct map_count *mc, size_t n)
{
    const char *status = r->invalid ? "invalid" : dw_verdict_status_name(r->v.status);

    dw_metrics_count_verdict((int) r->v.status, r->invalid, r->ops ? r->ops->nops : 0);
    if (n == 0) {
        dw_metrics_batch(r->v.map ? r->v.map : "", r->connector ? r->connector : "", status, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dw_metrics_batch(mc[i].map, r->connector ? r->connector : "", status, mc[i].rows);
}

/* "a,b" for the log line. */
static void map_list(const struct run *r, const struct map_count *mc, size_t n, char *buf, size_t size)
{
    size_t pos = 0;

    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, size, "%s", r->v.map ? r->v.map : "-");
        return;
    }
    for (size_t i = 0; i < n && pos + 1 < size; i++)
        pos += (size_t) snprintf(buf + pos, size - pos, "%s%s", i ? "," : "", mc[i].map);
}

static int finish(struct run *r, struct dw_buf *out)
{
    struct dw_error eerr;
    char maps[256], extra[512];
    int64_t elapsed_us = dw_now_us() - r->t0_us;
    size_t rows = r->ops ? r->ops->nops : 0;
    size_t start = out->len;
    struct map_count *mc;
    size_t nmaps;

    r->v.elapsed_ms = elapsed_us / 1000;
    dw_error_clear(&eerr);
    if (dw_wire_encode_verdict(&r->v, out, &eerr) != DW_OK) {
        /* only strings we did not clean could fail; answer without them */
        struct dw_verdict plain;

        if (start == 0) {
            dw_buf_reset(out);   /* also forgets the failure */
        } else {
            out->len = start;
            out->data[start] = '\0';
        }
        dw_verdict_init(&plain, NULL, r->v.status);
        plain.message = "the verdict could not be encoded";
        plain.elapsed_ms = r->v.elapsed_ms;
        dw_error_clear(&eerr);
        if (dw_wire_encode_verdict(&plain, out, &eerr) != DW_OK)
            dw_buf_puts(out, "{\"status\":\"unavailable\",\"message\":\"out of memory\"}");
    }
    dw_metrics_stage(DW_STAGE_TOTAL, elapsed_us);
    nmaps = count_maps(r, &mc);
    count(r, mc, nmaps);
    map_list(r, mc, nmaps, maps, sizeof(maps));
    extra[0] = '\0';
    if (r->v.message) {
        snprintf(extra, sizeof(extra), " stage=%s%s%s change=%ld sqlstate=%s", r->v.stage ? r->v.stage : "-",
                 r->v.map ? " map=" : "", r->v.map ? r->v.map : "", r->v.change,
                 r->v.target_sqlstate ? r->v.target_sqlstate : "-");
    }
    if (r->throttle_wait_ms > 0 || r->v.retry_after_s >= 0) {
        size_t used = strlen(extra);

        snprintf(extra + used, sizeof(extra) - used, " throttle_wait_ms=%lld%s", (long long) r->throttle_wait_ms,
                 r->v.retry_after_s >= 0 ? " retry_after_s=" : "");
        used = strlen(extra);
        if (r->v.retry_after_s >= 0)
            snprintf(extra + used, sizeof(extra) - used, "%lld", (long long) r->v.retry_after_s);
    }
    dw_info("batch %s: maps=%s rows=%zu status=%s http=%d elapsed_ms=%lld%s", r->v.id ? r->v.id : "-", maps,
            rows, dw_verdict_status_name(r->v.status), r->http, (long long) (elapsed_us / 1000), extra);
    if (r->v.message)
        dw_debug("batch %s: %s%s%s", r->v.id ? r->v.id : "-", r->v.message, r->v.detail ? " DETAIL: " : "",
                 r->v.detail ? r->v.detail : "");
    return r->http;
}

int dw_pipeline_refuse(int http_status, const char *stage, const char *message, struct dw_buf *out)
{
    struct dw_verdict v;
    struct dw_error err;

    dw_verdict_init(&v, NULL, http_status == 503 ? DW_VERDICT_UNAVAILABLE : DW_VERDICT_REJECTED);
    v.stage = stage;
    v.message = message;
    dw_error_clear(&err);
    if (dw_wire_encode_verdict(&v, out, &err) != DW_OK)
        dw_buf_puts(out, "{\"status\":\"rejected\",\"message\":\"request refused\"}");
    return http_status;
}

/* The id must be the source's "<system>:<database oid>:<xid>": the resolver reads the xid from the gid. */
static bool check_id(struct run *r)
{
    const struct dw_batch *b = r->batch;
    char system[32], xid[32];

    if (strlen(b->id) > MAX_ID_LEN) {
        dw_error_set(&r->err, DW_ERR_PROTOCOL, "/id: longer than %d bytes", MAX_ID_LEN);
        return false;
    }
    if (!dw_outcome_parse_id(b->id, system, sizeof(system), xid, sizeof(xid))) {
        dw_error_set(&r->err, DW_ERR_PROTOCOL, "/id: expected \"<system>:<database oid>:<xid>\" in decimal");
        return false;
    }
    if (!b->source_system || strcmp(system, b->source_system) != 0 || strcmp(xid, b->source_xid) != 0) {
        dw_error_set(&r->err, DW_ERR_PROTOCOL, "/id: does not match /source/system and /source/xid");
        return false;
    }
    return true;
}

static bool check_limits(struct run *r, const struct dw_conn_state *c, size_t body_len)
{
    const struct dw_limits *l = &c->entry->limits;

    if (l->records_per_transaction > 0 && r->ops->nops > (size_t) l->records_per_transaction) {
        dw_error_set(&r->err, DW_ERR_LIMIT,
                     "batch breaks the sync limit \"records_per_transaction\" of connector \"%s\": %zu "
                     "target records, limit %ld", c->name, r->ops->nops, l->records_per_transaction);
        dw_error_hint(&r->err, "Split the source transaction, or raise the connector's limit.");
        return false;
    }
    if (l->bytes_per_batch > 0 && body_len > (size_t) l->bytes_per_batch) {
        dw_error_set(&r->err, DW_ERR_LIMIT,
                     "batch breaks the sync limit \"bytes_per_batch\" of connector \"%s\": %zu bytes, "
                     "limit %ld", c->name, body_len, l->bytes_per_batch);
        dw_error_hint(&r->err, "Split the source transaction, or raise the connector's limit.");
        return false;
    }
    return true;
}

#ifdef DW_FAULT_INJECTION
/*
 * Fault injection (test builds only; -Dfault_injection=false removes it):
 * the environment variable DW_FAULT, set when the service is started, makes
 * it misbehave right after a successful PREPARE, before the verdict is sent,
 * for the crash tests of the failure matrix (DESIGN.md section 2):
 *   exit-after-prepare       SIGKILL the service: it dies holding the prepared
 *                            transaction, and the source never gets a verdict;
 *   delay-after-prepare:MS   sleep MS milliseconds before answering (a test
 *                            kills the target meanwhile).
 */
static void fault_after_prepare(const char *id)
{
    const char *f = getenv("DW_FAULT");

    if (!f)
        return;
    if (strcmp(f, "exit-after-prepare") == 0) {
        dw_warn("batch %s: fault \"%s\": killing the service", id, f);
        for (;;)
            kill(getpid(), SIGKILL);
    }
    if (strncmp(f, "delay-after-prepare:", 20) == 0) {
        long ms = strtol(f + 20, NULL, 10);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        dw_warn("batch %s: fault \"delay-after-prepare\": answering in %ld ms", id, ms);
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
}
#endif

/* Map a failed target call onto the verdict. */
static void target_failed(struct run *r, struct dw_session *s, const char *phase)
{
    if (r->err.code == DW_ERR_THROTTLED && !s->broken) {
        /* the target refused the whole changeset for now: run_target pauses and may retry */
        fail(r, 429, DW_VERDICT_THROTTLED, phase);
        return;
    }
    if (r->err.code == DW_ERR_TARGET && !s->broken) {
        fail(r, 409, DW_VERDICT_REJECTED, s->failed_op >= 0 ? "operation" : phase);
        r->v.target_sqlstate = nonempty(r->err.sqlstate);
        if (s->failed_op >= 0 && (size_t) s->failed_op < r->ops->nops) {
            r->v.map = r->ops->ops[s->failed_op].map;
            r->v.change = (long) r->ops->ops[s->failed_op].change;
        }
        return;
    }
    fail(r, 503, DW_VERDICT_UNAVAILABLE, phase);
    r->v.target_sqlstate = nonempty(r->err.sqlstate);
}

/* The operation stage on a checked-out session. */
static void operate(struct run *r, struct dw_conn_state *c, struct dw_session *s, int64_t deadline_ms)
{
    const struct dw_batch *b = r->batch;
    bool two_phase = s->two_phase && c->ops->prepare;
    char gid[MAX_ID_LEN + sizeof(DW_GID_PREFIX)];
    const char *phase = "operation";
    int64_t t;
    dw_errcode rc;

    if (deadline_ms > 0 && dw_now_ms() >= deadline_ms) {
        dw_error_set(&r->err, DW_ERR_TIMEOUT, "the batch's deadline passed before the target transaction "
                                              "could begin");
        fail(r, 503, DW_VERDICT_UNAVAILABLE, "operation");
        return;
    }
    if (two_phase && dw_outcome_register(b->id, c->name, b->source_xid, &r->err) != DW_OK) {
        if (r->err.code == DW_ERR_TARGET)
            fail(r, 409, DW_VERDICT_REJECTED, "pre-validation");   /* a duplicate, target untouched */
        else
            fail(r, 503, DW_VERDICT_UNAVAILABLE, "operation");
        return;
    }
    t = dw_now_us();
    s->deadline_ms = deadline_ms > 0 ? (long long) deadline_ms : 0;
    rc = c->ops->begin(s, b->id, &r->err);
    if (rc == DW_OK)
        rc = c->ops->apply(s, r->ops->ops, r->ops->nops, &r->err);
    dw_metrics_stage(DW_STAGE_OPERATION, dw_now_us() - t);
    if (rc == DW_OK) {
        t = dw_now_us();
        if (two_phase) {
            phase = "prepare";
            snprintf(gid, sizeof(gid), DW_GID_PREFIX "%s", b->id);
            rc = c->ops->prepare(s, gid, &r->err);
        } else {
            phase = "commit";
            rc = c->ops->commit(s, &r->err);
        }
        dw_metrics_stage(DW_STAGE_FINISH, dw_now_us() - t);
    }
    if (rc != DW_OK) {
        c->ops->rollback(s);
        if (two_phase) {
            /* A broken connection leaves PREPARE's fate unknown: let the resolver look. */
            if (s->broken)
                dw_outcome_prepared(b->id);
            else
                dw_outcome_forget(b->id);
        }
        target_failed(r, s, phase);
        return;
    }
    r->http = 200;
    if (two_phase) {
#ifdef DW_FAULT_INJECTION
        fault_after_prepare(b->id);
#endif
        dw_decision early = dw_outcome_prepared(b->id);

        r->v.status = DW_VERDICT_PREPARED;
        /* The outcome came while we were preparing: hand it to the settler now. */
        if (early != DW_DECISION_NONE)
            dw_settler_submit(b->id);
    } else {
        r->v.status = DW_VERDICT_COMMITTED;
    }
}

struct dw_throttle *dw_pipeline_throttle(const struct dw_state *st, const struct dw_conn_state *c)
{
    const struct dw_limits *l = &c->entry->limits;
    struct dw_throttle_limits tl;

    tl.requests_per_window = l->requests_per_window;
    tl.window_s = l->window_s;
    tl.execution_s_per_window = l->execution_s_per_window;
    tl.concurrent = l->concurrent;
    return dw_throttle_shared(c->name, &tl, st->generation);
}

static void throttled(struct run *r, int64_t retry_ms, const char *stage)
{
    fail(r, 429, DW_VERDICT_THROTTLED, stage);
    r->v.retry_after_s = retry_ms <= 0 ? 1 : (retry_ms + 999) / 1000;
}

/* Forget a throttled attempt before the retry. */
static void reset_verdict(struct run *r)
{
    const char *id = r->v.id;

    dw_error_clear(&r->err);
    dw_verdict_init(&r->v, id, DW_VERDICT_REJECTED);
    r->http = 500;
}

/*
 * Admission, a session, the operation; and once more when the target
 * throttled the batch by itself and the pause it asked for ends before the
 * deadline.  The admission of that second attempt is what waits out the pause.
 */
static bool has_delete(const struct dw_oplist *ops)
{
    for (size_t i = 0; i < ops->nops; i++) {
        if (ops->ops[i].kind == DW_OP_DELETE)
            return true;
    }
    return false;
}

static void run_target(struct run *r, struct dw_conn_state *c, int64_t deadline_ms)
{
    int64_t wait_until = deadline_ms > 0 ? deadline_ms : dw_now_ms() + DEFAULT_WAIT_MS;
    struct dw_throttle *th = dw_pipeline_throttle(r->st, c);

    if (!th) {
        dw_error_set(&r->err, DW_ERR_NOMEM, "out of memory");
        fail(r, 503, DW_VERDICT_UNAVAILABLE, "pre-validation");
        return;
    }
    for (int attempt = 0;; attempt++) {
        struct dw_throttle_ticket ticket;
        struct dw_session *s = NULL;
        int64_t t = dw_now_us(), retry_ms, exec_us, pause_ms;
        const char *stage;
        long asked;

        if (dw_throttle_admit(th, wait_until, &ticket, &retry_ms, &r->err) != DW_OK) {
            r->throttle_wait_ms += ticket.waited_ms;
            dw_metrics_stage(DW_STAGE_THROTTLE, dw_now_us() - t);
            throttled(r, retry_ms, "pre-validation");
            return;
        }
        r->throttle_wait_ms += ticket.waited_ms;
        dw_metrics_stage(DW_STAGE_THROTTLE, dw_now_us() - t);

        if (deadline_ms > 0 && dw_now_ms() >= deadline_ms) {
            dw_throttle_release(th, &ticket, 0);
            dw_error_set(&r->err, DW_ERR_TIMEOUT, "the batch's deadline passed before a target session was "
                                                  "taken");
            fail(r, 503, DW_VERDICT_UNAVAILABLE, "operation");
            return;
        }
        t = dw_now_us();
        if (dw_pool_acquire(c->workers, wait_until, &s, &r->err) != DW_OK) {
            dw_metrics_stage(DW_STAGE_SESSION_WAIT, dw_now_us() - t);
            dw_throttle_release(th, &ticket, 0);
            fail(r, 503, DW_VERDICT_UNAVAILABLE, "operation");
            return;
        }
        dw_metrics_stage(DW_STAGE_SESSION_WAIT, dw_now_us() - t);
        t = dw_now_us();
        operate(r, c, s, deadline_ms);
        exec_us = dw_now_us() - t;
        asked = s->retry_after_ms;
        dw_pool_release(c->workers, s);
        dw_throttle_release(th, &ticket, exec_us / 1000);
        if (r->http != 429)
            return;

        /* The target's own 429/503: nothing of the changeset was applied. */
        pause_ms = asked > 0 ? asked : DEFAULT_TARGET_PAUSE_MS;
        dw_throttle_pause(th, dw_throttle_now(th) + pause_ms);
        if (attempt == 0 && dw_now_ms() + pause_ms < wait_until) {
            dw_info("batch %s: connector \"%s\": the target throttled the batch; pausing the connector for "
                    "%lld ms, then trying once more", r->v.id ? r->v.id : "-", c->name, (long long) pause_ms);
            reset_verdict(r);
            continue;
        }
        dw_info("batch %s: connector \"%s\": the target throttled the batch; pausing the connector for %lld ms "
                "(%s)", r->v.id ? r->v.id : "-", c->name, (long long) pause_ms,
                attempt ? "the second attempt was throttled too" : "the pause passes the batch's deadline");
        stage = r->v.stage;
        dw_error_prefix(&r->err, "connector \"%s\"", c->name);
        dw_error_hint(&r->err, "The target asked the bridge to wait %lld s; retry the transaction then.",
                      (long long) (pause_ms + 999) / 1000);
        throttled(r, pause_ms, stage ? stage : "operation");
        return;
    }
}

int dw_pipeline_batch(const char *body, size_t len, struct dw_arena *arena, struct dw_buf *out,
                      int64_t *retry_after_s)
{
    struct run r;
    struct dw_batch *batch = NULL;
    struct dw_oplist ops;
    struct dw_conn_state *c;
    int64_t deadline_ms = 0, t;
    int http;

    *retry_after_s = -1;
    memset(&r, 0, sizeof(r));
    memset(&ops, 0, sizeof(ops));
    r.t0_us = dw_now_us();
    r.arena = arena;
    dw_error_clear(&r.err);
    dw_verdict_init(&r.v, NULL, DW_VERDICT_REJECTED);
    r.http = 500;

    /* ---- pre-validation ---- */
    if (dw_wire_decode_batch(body, len, arena, &batch, &r.err) != DW_OK) {
        r.invalid = true;
        if (r.err.code == DW_ERR_LIMIT && len > DW_WIRE_MAX_BATCH_BYTES)
            fail(&r, 413, DW_VERDICT_REJECTED, "decode");
        else if (r.err.code == DW_ERR_NOMEM)
            fail(&r, 503, DW_VERDICT_UNAVAILABLE, "decode");
        else
            fail(&r, 400, DW_VERDICT_REJECTED, "decode");
        return finish(&r, out);
    }
    r.batch = batch;
    r.v.id = clean_utf8(arena, batch->id);
    if (batch->deadline_ms >= 0)
        deadline_ms = r.t0_us / 1000 + batch->deadline_ms;
    if (!check_id(&r)) {
        r.invalid = true;
        r.v.id = NULL;   /* not an id we would answer to */
        fail(&r, 400, DW_VERDICT_REJECTED, "decode");
        return finish(&r, out);
    }

    r.st = dw_state_acquire();
    if (!r.st) {
        dw_error_set(&r.err, DW_ERR_INTERNAL, "the bridge is starting");
        fail(&r, 503, DW_VERDICT_UNAVAILABLE, "pre-validation");
        return finish(&r, out);
    }
    if (r.st->config->source_system && strcmp(batch->source_system, r.st->config->source_system) != 0) {
        dw_error_set(&r.err, DW_ERR_MAP,
                     "batch comes from source system %s, but this bridge serves source system %s",
                     batch->source_system, r.st->config->source_system);
        fail(&r, 422, DW_VERDICT_REJECTED, "pre-validation");
        goto out;
    }
    t = dw_now_us();
    if (dw_map_apply(r.st->maps, batch, arena, &ops, &r.err) != DW_OK) {
        r.v.map = ops.fail_map;
        r.v.change = ops.fail_change;
        if (r.err.code == DW_ERR_MAP || r.err.code == DW_ERR_LIMIT)
            fail(&r, 422, DW_VERDICT_REJECTED, "pre-validation");
        else
            fail(&r, 503, DW_VERDICT_UNAVAILABLE, "pre-validation");
        goto out;
    }
    r.ops = &ops;
    r.connector = ops.connector;
    if (ops.nops == 0) {
        /* every change filtered out or unchanged in mapped columns: nothing to send */
        dw_metrics_stage(DW_STAGE_PREVALIDATION, dw_now_us() - t);
        r.http = 200;
        r.v.status = DW_VERDICT_COMMITTED;
        goto out;
    }
    c = dw_state_conn(r.st, ops.connector);
    if (!c) {
        dw_error_set(&r.err, DW_ERR_INTERNAL, "connector \"%s\" is not configured", ops.connector);
        fail(&r, 503, DW_VERDICT_UNAVAILABLE, "pre-validation");
        goto out;
    }
    if (!check_limits(&r, c, len)) {
        fail(&r, 422, DW_VERDICT_REJECTED, "pre-validation");
        goto out;
    }
    dw_metrics_stage(DW_STAGE_PREVALIDATION, dw_now_us() - t);

    /*
     * A delete must not reach the target before the COMMIT PREPARED of a
     * transaction that the source committed before it: the row that
     * transaction inserted stays invisible to the DELETE until then, and
     * nothing makes a DELETE wait for it (an upsert waits, on the key's
     * unique index).  So a batch with deletes first waits for every outcome
     * received so far to be applied (G3; see dw_settler.c).
     */
    if (has_delete(&ops) &&
        !dw_settler_wait(dw_settler_last_ticket(), (deadline_ms > 0 ? deadline_ms : dw_now_ms() + DEFAULT_WAIT_MS) -
                                                       dw_now_ms())) {
        dw_error_set(&r.err, DW_ERR_TIMEOUT, "earlier transactions' outcomes are still being applied on the "
                                             "target; retry the transaction");
        fail(&r, 503, DW_VERDICT_UNAVAILABLE, "previous-outcome");
        goto out;
    }

    /* ---- throttle, then operation ---- */
    run_target(&r, c, deadline_ms);

out:
    http = finish(&r, out);
    *retry_after_s = http == 429 ? r.v.retry_after_s : -1;
    dw_state_release(r.st);
    return http;
}
