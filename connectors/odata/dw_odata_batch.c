/*
 * The odata connector's batches: a whole batch is one POST $batch holding
 * one changeset, which the service applies atomically.
 *
 * begin only resets; apply renders each operation into its MIME part at once
 * (upsert: PATCH Set(key) with a JSON body of the other columns, which
 * creates the entity when it is missing; delete: DELETE Set(key)), so that a
 * value the target type cannot hold fails at its operation before anything
 * is sent; commit wraps the parts in the changeset, sends it and reads the
 * answer.  Each part's Content-ID is its operation's index plus one, which
 * is how a failure names its operation.
 *
 * A DELETE whose entity is not there fails the changeset with 404, so
 * nothing was applied; as a delete of a missing row is no change (the pg
 * connector's DELETE simply matches nothing), commit sends the changeset
 * again without it.  That is safe: the service ran the parts in order and
 * the entity was absent at that point, so leaving the part out changes no
 * later part's outcome.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"
#include "connectors/odata/dw_odata_encode.h"
#include "connectors/odata/dw_odata_int.h"
#include "connectors/odata/dw_odata_multipart.h"

/* At most this many missing-entity DELETEs are left out of one batch. */
#define MAX_RESENDS 32

static struct odata_session *session(struct dw_session *base)
{
    return (struct odata_session *) base;
}

static void reset_batch(struct odata_session *s)
{
    s->in_batch = false;
    s->nops = 0;
    s->batch_id[0] = '\0';
    dw_buf_reset(&s->parts);
}

void dw_odata_batch_cleanup(struct odata_session *s)
{
    reset_batch(s);
    free(s->ops);
    s->ops = NULL;
    s->opcap = 0;
    dw_buf_cleanup(&s->parts);
}

/* The batch id goes into a header: visible ASCII only. */
static bool header_safe(const char *v)
{
    size_t n = 0;

    for (; v[n]; n++)
        if ((unsigned char) v[n] < 0x21 || (unsigned char) v[n] > 0x7e)
            return false;
    return n > 0 && n < 256;
}

dw_errcode dw_odata_begin(struct dw_session *base, const char *batch_id, struct dw_error *err)
{
    struct odata_session *s = session(base);

    if (s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot begin a batch while another is in "
                            "progress on the same session");
    reset_batch(s);
    base->failed_op = -1;
    base->retry_after_ms = 0;
    if (batch_id && !header_safe(batch_id))
        return dw_error_set(err, DW_ERR_PROTOCOL, "batch id \"%.64s\" cannot be sent in an HTTP "
                            "header", batch_id);
    snprintf(s->batch_id, sizeof(s->batch_id), "%s", batch_id ? batch_id : "");
    s->in_batch = true;
    return DW_OK;
}

/* ---------------------------------------------------------------- keys */

static bool in_list(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Do the names cover exactly want[0..nwant) (no repeats)? */
static bool same_names(const char *const *names, size_t n, const char *const *want, size_t nwant)
{
    if (n != nwant || n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!in_list(names[i], want, nwant))
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return false;
    }
    return true;
}

int dw_odata_key_match(const struct dw_odata_set *set, const char *const *names, size_t n,
                       const struct dw_odata_altkey **alt)
{
    const char *keys[64];

    *alt = NULL;
    if (set->nkey > 0 && set->nkey <= 64) {
        for (size_t i = 0; i < set->nkey; i++)
            keys[i] = set->key[i]->name;
        if (same_names(names, n, keys, set->nkey))
            return 1;
    }
    for (size_t i = 0; i < set->naltkeys; i++) {
        if (same_names(names, n, set->altkeys[i].names, set->altkeys[i].n)) {
            *alt = &set->altkeys[i];
            return 2;
        }
    }
    return 0;
}

/* The value of column name in op's key columns. */
static const char *key_value(const struct dw_target_op *op, const char *name)
{
    for (size_t i = 0; i < op->nkey; i++)
        if (strcmp(op->columns[i], name) == 0)
            return op->values[i];
    return NULL;
}

dw_errcode dw_odata_key_predicate(struct dw_buf *b, const struct dw_odata_set *set,
                                  const struct dw_target_op *op, struct dw_error *err)
{
    const struct dw_odata_altkey *alt;
    int match = dw_odata_key_match(set, op->columns, op->nkey, &alt);
    size_t n = match == 1 ? set->nkey : alt ? alt->n : 0;
    dw_errcode rc;

    if (!match)
        return dw_error_set(err, DW_ERR_TARGET, "the key columns of table map \"%s\" are neither "
                            "the key nor an alternate key of entity set \"%s\"",
                            op->map ? op->map : "?", set->name);
    dw_buf_putc(b, '(');
    for (size_t i = 0; i < n; i++) {
        const char *name = match == 1 ? set->key[i]->name : alt->names[i];
        const struct dw_odata_property *p = dw_odata_set_property(set, name);

        if (!p)
            return dw_error_set(err, DW_ERR_TARGET, "entity set \"%s\" has no property \"%s\" "
                                "for its alternate key", set->name, name);
        if (i)
            dw_buf_putc(b, ',');
        if (n > 1 || match == 2) {
            dw_odata_put_pct(b, name, strlen(name));
            dw_buf_putc(b, '=');
        }
        if ((rc = dw_odata_put_key_literal(b, p, key_value(op, name), err)) != DW_OK)
            return rc;
    }
    dw_buf_putc(b, ')');
    return DW_OK;
}

/* ---------------------------------------------------------------- rendering */

static dw_errcode check_op(const struct dw_target_op *op, long index, struct dw_error *err)
{
    if (!op->table || !op->table[0] || !op->columns || !op->values || op->nkey == 0 ||
        op->ncolumns < op->nkey || (op->kind != DW_OP_UPSERT && op->kind != DW_OP_DELETE))
        return dw_error_set(err, DW_ERR_INTERNAL, "operation %ld is malformed (no table, no key, "
                            "or fewer columns than key columns)", index);
    for (size_t i = 0; i < op->ncolumns; i++)
        if (!op->columns[i] || !op->columns[i][0])
            return dw_error_set(err, DW_ERR_INTERNAL, "operation %ld has an empty column name",
                                index);
    return DW_OK;
}

/*
 * The entity set of op, fetching $metadata again (if it is old) when the
 * set or one of the op's properties is not in the model we have.
 */
static dw_errcode find_set(struct odata_session *s, const struct dw_target_op *op,
                           const struct dw_odata_set **out, struct dw_error *err)
{
    for (int attempt = 0;; attempt++) {
        const struct dw_odata_set *set;
        const char *missing = NULL;
        dw_errcode rc = dw_odata_model(s, attempt > 0, err);

        if (rc != DW_OK)
            return rc;
        set = dw_odata_metadata_set(s->model->meta, op->table);
        for (size_t i = 0; set && i < op->ncolumns && !missing; i++)
            if (!strchr(op->columns[i], '@') && !dw_odata_set_property(set, op->columns[i]))
                missing = op->columns[i];
        if (set && !missing) {
            *out = set;
            return DW_OK;
        }
        if (attempt > 0) {
            if (!set)
                return dw_error_set(err, DW_ERR_TARGET, "entity set \"%s\" does not exist in the "
                                    "OData service", op->table);
            return dw_error_set(err, DW_ERR_TARGET, "entity set \"%s\" has no property \"%s\"",
                                op->table, missing);
        }
    }
}

static dw_errcode render(struct odata_session *s, const struct dw_target_op *op, long index,
                         struct dw_error *err)
{
    struct dw_buf *b = &s->parts;
    const struct dw_odata_set *set = NULL;
    dw_errcode rc;
    bool first = true;

    if ((rc = find_set(s, op, &set, err)) != DW_OK)
        return rc;
    dw_buf_printf(b, "Content-Type: application/http\r\n"
                     "Content-Transfer-Encoding: binary\r\n"
                     "Content-ID: %ld\r\n\r\n%s ", index + 1,
                  op->kind == DW_OP_DELETE ? "DELETE" : "PATCH");
    dw_odata_put_pct(b, set->name, strlen(set->name));
    if ((rc = dw_odata_key_predicate(b, set, op, err)) != DW_OK)
        return rc;
    if (op->kind == DW_OP_DELETE) {
        dw_buf_puts(b, " HTTP/1.1\r\n\r\n");
        return DW_OK;
    }
    /* no If-Match: PATCH without it creates the entity when it is missing (upsert) */
    dw_buf_puts(b, " HTTP/1.1\r\nContent-Type: application/json\r\nPrefer: return=minimal\r\n\r\n{");
    for (size_t i = op->nkey; i < op->ncolumns; i++) {
        const char *name = op->columns[i];
        const struct dw_odata_property *p = dw_odata_set_property(set, name);

        if (!first)
            dw_buf_putc(b, ',');
        first = false;
        if (dw_utf8_validate(name, strlen(name), NULL) != DW_UTF8_OK)
            return dw_error_set(err, DW_ERR_TARGET, "a column name of table map \"%s\" is not "
                                "valid UTF-8", op->map ? op->map : "?");
        dw_wire_put_string(b, name, strlen(name));
        dw_buf_putc(b, ':');
        if (!p) {
            /* an instance annotation such as "parent@odata.bind": a string, as given */
            if (op->values[i] &&
                dw_utf8_validate(op->values[i], strlen(op->values[i]), NULL) != DW_UTF8_OK)
                return dw_error_set(err, DW_ERR_TARGET, "value of \"%s\" is not valid UTF-8",
                                    name);
            if (op->values[i])
                dw_wire_put_string(b, op->values[i], strlen(op->values[i]));
            else
                dw_buf_puts(b, "null");
            continue;
        }
        if ((rc = dw_odata_put_json_value(b, p, op->values[i], err)) != DW_OK)
            return rc;
    }
    dw_buf_putc(b, '}');
    return DW_OK;
}

static void op_context(const struct odata_session *s, long index, struct dw_error *err)
{
    const struct odata_op *o;

    if (!err || err->context[0] || index < 0 || (size_t) index >= s->nops)
        return;
    o = &s->ops[index];
    snprintf(err->context, sizeof(err->context), "operation %ld: %s entity set \"%s\"", index,
             o->del ? "delete from" : "upsert into", o->table ? o->table : "?");
}

dw_errcode dw_odata_apply(struct dw_session *base, const struct dw_target_op *ops, size_t nops,
                          struct dw_error *err)
{
    struct odata_session *s = session(base);

    if (!s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot apply operations outside a batch");
    for (size_t i = 0; i < nops; i++) {
        const struct dw_target_op *op = &ops[i];
        long index = (long) s->nops;
        size_t start = s->parts.len;
        struct odata_op *o;
        dw_errcode rc;

        if (s->nops == s->opcap) {
            size_t cap = s->opcap ? s->opcap * 2 : 64;
            struct odata_op *p = realloc(s->ops, cap * sizeof(*p));

            if (!p)
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            s->ops = p;
            s->opcap = cap;
        }
        rc = check_op(op, index, err);
        if (rc == DW_OK)
            rc = render(s, op, index, err);
        if (rc == DW_OK && dw_buf_failed(&s->parts))
            rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        if (rc != DW_OK) {
            if (rc == DW_ERR_TARGET || rc == DW_ERR_INTERNAL) {
                base->failed_op = index;
                if (err && !err->context[0] && op->table)
                    snprintf(err->context, sizeof(err->context), "operation %ld: %s entity set "
                             "\"%s\"", index, op->kind == DW_OP_DELETE ? "delete from" :
                             "upsert into", op->table);
            }
            return rc;
        }
        o = &s->ops[s->nops++];
        o->off = start;
        o->len = s->parts.len - start;
        o->table = op->table;
        o->del = op->kind == DW_OP_DELETE;
        o->dropped = false;
    }
    return DW_OK;
}

/* ---------------------------------------------------------------- sending */

/*
 * A boundary no part can contain: parts are CRLF-separated lines of headers,
 * request lines with percent-encoded URLs, and one-line JSON, so no line can
 * start with "--batch_<16 random hex digits>".
 */
static void make_boundary(struct odata_session *s, const char *kind, char *out, size_t size)
{
    unsigned char r[8];

    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t) sizeof(r)) {
        uint64_t x = (uint64_t) (uintptr_t) s ^ ((uint64_t) getpid() << 32) ^
                     (uint64_t) time(NULL) ^ (s->seq + 1) * 0x9E3779B97F4A7C15ULL;

        memcpy(r, &x, sizeof(r));
    }
    s->seq++;
    snprintf(out, size, "%s_%02x%02x%02x%02x%02x%02x%02x%02x_%lu", kind, r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7], s->seq);
}

static void build_request(struct odata_session *s, const char *outer, const char *inner)
{
    struct dw_buf *b = &s->req;

    dw_buf_reset(b);
    dw_buf_printf(b, "--%s\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", outer, inner);
    for (size_t i = 0; i < s->nops; i++) {
        if (s->ops[i].dropped)
            continue;
        dw_buf_printf(b, "--%s\r\n", inner);
        dw_buf_append(b, s->parts.data + s->ops[i].off, s->ops[i].len);
        dw_buf_puts(b, "\r\n");
    }
    dw_buf_printf(b, "--%s--\r\n--%s--\r\n", inner, outer);
}

/* The operation a Content-ID names, or -1. */
static long op_of(const struct odata_session *s, const char *content_id)
{
    char *end;
    long id;

    if (!content_id || !*content_id)
        return -1;
    id = strtol(content_id, &end, 10);
    if (*end || id < 1 || (size_t) id > s->nops || s->ops[id - 1].dropped)
        return -1;
    return id - 1;
}

static size_t live_ops(const struct odata_session *s, long *only)
{
    size_t n = 0;

    *only = -1;
    for (size_t i = 0; i < s->nops; i++) {
        if (!s->ops[i].dropped) {
            n++;
            *only = (long) i;
        }
    }
    return n;
}

static dw_errcode protocol(struct odata_session *s, struct dw_error *err)
{
    s->base.broken = true;   /* start over with a fresh connection */
    dw_error_detail(err, "The batch may or may not have been applied: the answer cannot tell.");
    return DW_ERR_PROTOCOL;
}

/* A changeset answer: every request answered once, in a 2xx, or the first failure. */
static dw_errcode check_changeset(struct odata_session *s, const struct dw_odata_response *r,
                                  size_t live, const struct dw_odata_part **failed,
                                  struct dw_error *err)
{
    bool *seen;

    *failed = NULL;
    for (size_t i = 0; i < r->nparts; i++) {
        if (r->parts[i].status < 200 || r->parts[i].status > 299) {
            *failed = &r->parts[i];
            return DW_OK;
        }
    }
    if (r->nparts != live) {
        dw_error_set(err, DW_ERR_PROTOCOL, "malformed $batch response: the changeset's answer "
                     "has %zu responses for %zu requests", r->nparts, live);
        return protocol(s, err);
    }
    seen = calloc(s->nops ? s->nops : 1, sizeof(*seen));
    if (!seen)
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->nparts; i++) {
        long op = op_of(s, r->parts[i].content_id);

        if (!r->parts[i].content_id)
            continue;   /* Content-ID is optional in answers; the count above holds */
        if (op < 0 || seen[op]) {
            free(seen);
            dw_error_set(err, DW_ERR_PROTOCOL, "malformed $batch response: a response has "
                         "Content-ID \"%.32s\", which %s", r->parts[i].content_id,
                         op < 0 ? "no request had" : "another response has too");
            return protocol(s, err);
        }
        seen[op] = true;
    }
    free(seen);
    return DW_OK;
}

/* One round trip; *resend when a DELETE of a missing entity was left out for another. */
static dw_errcode exchange(struct odata_session *s, bool *resend, struct dw_error *err)
{
    char outer[64], inner[64], ctype[128], url_cid[32] = "";
    struct dw_odata_response r;
    const struct dw_odata_part *failed = NULL;
    struct dw_buf url;
    long only, op;
    size_t live = live_ops(s, &only);
    dw_errcode rc;

    *resend = false;
    make_boundary(s, "batch", outer, sizeof(outer));
    make_boundary(s, "changeset", inner, sizeof(inner));
    build_request(s, outer, inner);
    if (dw_buf_failed(&s->req))
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    snprintf(ctype, sizeof(ctype), "multipart/mixed; boundary=%s", outer);
    dw_buf_init(&url);
    dw_buf_printf(&url, "%s$batch", s->root);
    if (dw_buf_failed(&url)) {
        dw_buf_cleanup(&url);
        return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
    rc = dw_odata_http(s, url.data, ctype, s->req.data, s->req.len, "multipart/mixed",
                       s->batch_id[0] ? s->batch_id : NULL, ODATA_MAX_RESPONSE,
                       "sending the batch", err);
    dw_buf_cleanup(&url);
    if (rc != DW_OK)
        return rc;
    if (s->resp.status != 200) {
        if (s->resp.status >= 200 && s->resp.status < 300) {
            dw_error_set(err, DW_ERR_PROTOCOL, "the OData service answered the batch with HTTP "
                         "%ld, not 200 and a multipart answer", s->resp.status);
            return protocol(s, err);
        }
        rc = dw_odata_status_error(s, s->resp.status, s->resp.retry_after, s->resp.body.data,
                                   s->resp.body.len, url_cid, sizeof(url_cid), err);
        op = op_of(s, url_cid);
        if (op < 0 && live == 1 && rc == DW_ERR_TARGET && s->resp.status != 401 &&
            s->resp.status != 403)
            op = only;
        if (rc == DW_ERR_TARGET && op >= 0) {
            s->base.failed_op = op;
            op_context(s, op, err);
        }
        return rc;
    }
    dw_arena_reset(&s->arena);
    rc = dw_odata_multipart_parse(s->resp.content_type, s->resp.body.data ? s->resp.body.data : "",
                                  s->resp.body.len, &s->arena, &r, err);
    if (rc != DW_OK)
        return rc == DW_ERR_NOMEM ? rc : protocol(s, err);
    if (r.changeset) {
        rc = check_changeset(s, &r, live, &failed, err);
        if (rc != DW_OK || !failed)
            return rc;   /* committed, or a malformed answer */
    } else {
        failed = &r.parts[0];
        if (failed->status >= 200 && failed->status < 300) {
            dw_error_set(err, DW_ERR_PROTOCOL, "malformed $batch response: the changeset was "
                         "answered by a single response of HTTP %d, not by a changeset",
                         failed->status);
            return protocol(s, err);
        }
    }
    /* the changeset failed, so the service applied none of it */
    rc = dw_odata_status_error(s, failed->status, failed->retry_after, failed->body,
                               failed->body_len, url_cid, sizeof(url_cid), err);
    op = op_of(s, failed->content_id);
    if (op < 0)
        op = op_of(s, url_cid);
    if (op < 0 && live == 1)
        op = only;
    if (failed->status == 404 && op >= 0 && s->ops[op].del) {
        s->ops[op].dropped = true;
        *resend = true;
        dw_error_clear(err);   /* ours alone: nothing before us set it (first error wins) */
        return DW_OK;
    }
    if (rc == DW_ERR_TARGET && op >= 0 && failed->status != 401 && failed->status != 403) {
        s->base.failed_op = op;
        op_context(s, op, err);
        if (failed->status == 404 && !s->ops[op].del)
            dw_error_hint(err, "The service did not create a missing entity on PATCH: an upsert "
                          "needs a service that treats PATCH without If-Match as create-or-update, "
                          "as Dataverse does.");
    }
    return rc;
}

dw_errcode dw_odata_commit(struct dw_session *base, struct dw_error *err)
{
    struct odata_session *s = session(base);
    struct dw_error local;
    dw_errcode rc = DW_OK;
    long only;

    if (!s->in_batch)
        return dw_error_set(err, DW_ERR_INTERNAL, "cannot end a batch that was not begun");
    if (base->broken) {
        reset_batch(s);
        return dw_error_set(err, DW_ERR_CONNECT, "the session's connection to the OData service "
                            "was lost before the batch was sent");
    }
    for (int round = 0; round <= MAX_RESENDS; round++) {
        bool resend = false;

        if (live_ops(s, &only) == 0)
            break;   /* nothing (left) to send */
        dw_error_clear(&local);
        rc = exchange(s, &resend, &local);
        if (rc != DW_OK || !resend)
            break;
        if (round == MAX_RESENDS) {
            rc = dw_error_set(&local, DW_ERR_TARGET, "more than %d deletes of entities that do "
                              "not exist in one batch", MAX_RESENDS);
            dw_error_hint(&local, "Each one costs a round trip: the changeset fails at the first "
                          "and is sent again without it.");
        }
    }
    if (rc != DW_OK && err && !dw_error_is_set(err))
        *err = local;
    reset_batch(s);
    return rc;
}

void dw_odata_rollback(struct dw_session *base)
{
    /* one-phase: nothing is open on the service between requests */
    reset_batch(session(base));
}
