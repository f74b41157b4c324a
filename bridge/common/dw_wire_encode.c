/*
 * Writing batches and verdicts as JSON, without a JSON library.
 *
 * The PostgreSQL extension calls the incremental writer on every commit that
 * has changes, into a buffer it keeps across transactions, so the writer only
 * appends: no per-value allocation, no intermediate tree.  Output is
 * deterministic (fixed key order, no whitespace, one escape form per
 * character), which lets tests compare encodings byte for byte.
 *
 * Strings must be valid UTF-8: the wire format is UTF-8 and we will not invent
 * replacement characters in someone's data.  The incremental writer can only
 * report through the buffer, so invalid input marks it failed (as running out
 * of memory does); dw_wire_encode_batch checks first and names the field.
 */
#include "bridge/common/dw_wire.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_utf8.h"

static const char *const change_op_names[] = {"insert", "update", "delete"};
static const char *const verdict_status_names[] = {
    "prepared", "committed", "rejected", "throttled", "unavailable"};

#define SQLSTATE_CHARS "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#define N_OPS (sizeof(change_op_names) / sizeof(change_op_names[0]))
#define N_STATUSES (sizeof(verdict_status_names) / sizeof(verdict_status_names[0]))

const char *dw_change_op_name(dw_change_op op)
{
    if ((unsigned) op < N_OPS)
        return change_op_names[op];
    return "unknown";
}

const char *dw_verdict_status_name(dw_verdict_status s)
{
    if ((unsigned) s < N_STATUSES)
        return verdict_status_names[s];
    return "unknown";
}

void dw_verdict_init(struct dw_verdict *v, const char *id, dw_verdict_status status)
{
    memset(v, 0, sizeof(*v));
    v->id = id;
    v->status = status;
    v->change = -1;
    v->elapsed_ms = -1;
    v->retry_after_s = -1;
}

/* ---- strings ---- */

/*
 * The escape for an ASCII byte that cannot appear raw in a JSON string, or
 * NULL.  Short forms where JSON has them, \u00XX for the other controls.
 */
static const char *escape_of(unsigned char c, char tmp[7])
{
    static const char hex[] = "0123456789abcdef";

    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: break;
    }
    if (c >= 0x20)
        return NULL;
    memcpy(tmp, "\\u00", 4);
    tmp[4] = hex[c >> 4];
    tmp[5] = hex[c & 0xF];
    tmp[6] = '\0';
    return tmp;
}

/*
 * Append s[0..len) as a string literal.  Returns false, marking b failed, when
 * s is not valid UTF-8.  Runs of bytes that need no escape are copied at once.
 */
static bool put_string(struct dw_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t run = 0, i = 0;

    /* the common case has no escapes: one reservation for all of it */
    if (!dw_buf_reserve(b, len + 2))
        return true;   /* out of memory is already recorded in b */
    dw_buf_putc(b, '"');
    while (i < len) {
        unsigned char c = u[i];
        const char *esc;
        char tmp[7];

        if (c >= 0x80) {
            uint32_t cp;
            size_t n;

            if (dw_utf8_decode(s + i, len - i, &cp, &n) != DW_UTF8_OK) {
                b->failed = true;
                return false;
            }
            i += n;
            continue;
        }
        esc = escape_of(c, tmp);
        if (!esc) {
            i++;
            continue;
        }
        dw_buf_append(b, s + run, i - run);
        dw_buf_puts(b, esc);
        run = ++i;
    }
    dw_buf_append(b, s + run, len - run);
    dw_buf_putc(b, '"');
    return true;
}

void dw_wire_put_string(struct dw_buf *b, const char *s, size_t len)
{
    (void) put_string(b, s, len);
}

/* A NUL-terminated string, or null for NULL. */
static void put_nullable(struct dw_buf *b, const char *s)
{
    if (s)
        (void) put_string(b, s, strlen(s));
    else
        dw_buf_puts(b, "null");
}

/* A required string: NULL is a caller bug, and nothing sensible can be sent. */
static void put_required(struct dw_buf *b, const char *s)
{
    if (s)
        (void) put_string(b, s, strlen(s));
    else
        b->failed = true;
}

static void put_int(struct dw_buf *b, int64_t v)
{
    dw_buf_printf(b, "%" PRId64, v);
}

/* ---- the batch writer ---- */

void dw_wire_batch_begin(struct dw_buf *b, const char *id, const char *system,
                         const char *database, const char *xid, const char *origin,
                         int64_t deadline_ms)
{
    dw_buf_puts(b, "{\"id\":");
    put_required(b, id);
    dw_buf_puts(b, ",\"source\":{\"system\":");
    put_required(b, system);
    dw_buf_puts(b, ",\"database\":");
    put_required(b, database);
    dw_buf_puts(b, ",\"xid\":");
    put_required(b, xid);
    dw_buf_puts(b, "},\"origin\":");
    put_nullable(b, origin);
    if (deadline_ms >= 0) {
        dw_buf_puts(b, ",\"deadline_ms\":");
        put_int(b, deadline_ms);
    }
    dw_buf_puts(b, ",\"changes\":[");
}

static void put_row(struct dw_buf *b, const char *key, const struct dw_row *row)
{
    dw_buf_puts(b, key);
    if (!row || (row->ncols > 0 && (!row->names || !row->values))) {
        b->failed = true;
        return;
    }
    dw_buf_putc(b, '{');
    for (size_t i = 0; i < row->ncols; i++) {
        if (i > 0)
            dw_buf_putc(b, ',');
        put_required(b, row->names[i]);
        dw_buf_putc(b, ':');
        put_nullable(b, row->values[i]);
    }
    dw_buf_putc(b, '}');
}

void dw_wire_batch_change(struct dw_buf *b, const char *table, dw_change_op op,
                          const struct dw_row *old_row, const struct dw_row *new_row)
{
    /* begin leaves '[' last; every change leaves '}' */
    if (b->len > 0 && b->data[b->len - 1] != '[')
        dw_buf_putc(b, ',');
    dw_buf_puts(b, "{\"table\":");
    put_required(b, table);
    if ((unsigned) op >= N_OPS) {
        b->failed = true;
        return;
    }
    dw_buf_puts(b, ",\"op\":\"");
    dw_buf_puts(b, change_op_names[op]);
    dw_buf_putc(b, '"');
    /* the op decides which images go on the wire; an image it has no use for is ignored */
    if (op != DW_CHANGE_INSERT)
        put_row(b, ",\"old\":", old_row);
    if (op != DW_CHANGE_DELETE)
        put_row(b, ",\"new\":", new_row);
    dw_buf_putc(b, '}');
}

void dw_wire_batch_end(struct dw_buf *b)
{
    dw_buf_puts(b, "]}");
}

/* ---- whole-value encoders, which check first so errors can name the field ---- */

static dw_errcode bad_field(struct dw_error *err, dw_errcode code, const char *path,
                            const char *fmt, ...) DW_PRINTF(4, 5);

static dw_errcode bad_field(struct dw_error *err, dw_errcode code, const char *path,
                            const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dw_error_set(err, code, "cannot encode %s: %s", path, msg);
}

/*
 * A string field: present (unless optional), nonempty when required (the
 * decoder rejects empty names and ids), and valid UTF-8; what names it.
 */
static dw_errcode check_string(const char *s, bool required, const char *path, const char *what,
                               struct dw_error *err)
{
    size_t bad = 0;
    dw_utf8_status st;

    if (!s)
        return required ? bad_field(err, DW_ERR_INTERNAL, path, "%s is NULL", what) : DW_OK;
    if (required && !*s)
        return bad_field(err, DW_ERR_INTERNAL, path, "%s is empty", what);
    st = dw_utf8_validate(s, strlen(s), &bad);
    if (st != DW_UTF8_OK)
        return bad_field(err, DW_ERR_PROTOCOL, path, "%s is not valid UTF-8 (%s at byte %zu)",
                         what, dw_utf8_status_text(st), bad);
    return DW_OK;
}

struct field {
    const char *s;
    bool required;
    const char *path;
};

static dw_errcode check_fields(const struct field *fields, size_t n, struct dw_error *err)
{
    for (size_t i = 0; i < n; i++) {
        dw_errcode rc = check_string(fields[i].s, fields[i].required, fields[i].path, "string",
                                     err);

        if (rc != DW_OK)
            return rc;
    }
    return DW_OK;
}

static dw_errcode check_row(const struct dw_row *row, size_t change, const char *image,
                            struct dw_error *err)
{
    char path[192];
    dw_errcode rc;

    snprintf(path, sizeof(path), "/changes/%zu/%s", change, image);
    if (row->ncols > 0 && (!row->names || !row->values))
        return bad_field(err, DW_ERR_INTERNAL, path, "row has columns but no names or values");
    for (size_t i = 0; i < row->ncols; i++) {
        const char *name = row->names[i], *value = row->values[i];

        if (name && *name && dw_utf8_validate(name, strlen(name), NULL) == DW_UTF8_OK &&
            (!value || dw_utf8_validate(value, strlen(value), NULL) == DW_UTF8_OK))
            continue;
        /* the path is built only for the column at fault */
        if (!name) {
            size_t base = strlen(path);

            snprintf(path + base, sizeof(path) - base, "/%zu", i);
            return bad_field(err, DW_ERR_INTERNAL, path, "column name is NULL");
        }
        dw_json_path_append(path, sizeof(path), name, strlen(name));
        if ((rc = check_string(name, true, path, "column name", err)) != DW_OK)
            return rc;
        return check_string(value, false, path, "value", err);
    }
    return DW_OK;
}

static dw_errcode check_batch(const struct dw_batch *batch, struct dw_error *err)
{
    dw_errcode rc;

    const struct field fields[] = {
        {batch->id, true, "/id"},
        {batch->source_system, true, "/source/system"},
        {batch->source_database, true, "/source/database"},
        {batch->source_xid, true, "/source/xid"},
        {batch->origin, false, "/origin"},
    };

    if ((rc = check_fields(fields, sizeof(fields) / sizeof(fields[0]), err)) != DW_OK)
        return rc;
    if (batch->nchanges > 0 && !batch->changes)
        return bad_field(err, DW_ERR_INTERNAL, "/changes", "batch has changes but no array");
    for (size_t i = 0; i < batch->nchanges; i++) {
        const struct dw_change *c = &batch->changes[i];
        char path[48];

        snprintf(path, sizeof(path), "/changes/%zu/table", i);
        if ((rc = check_string(c->table, true, path, "table name", err)) != DW_OK)
            return rc;
        if ((unsigned) c->op >= N_OPS) {
            snprintf(path, sizeof(path), "/changes/%zu/op", i);
            return bad_field(err, DW_ERR_INTERNAL, path, "op %d is not a dw_change_op",
                             (int) c->op);
        }
        if ((c->op != DW_CHANGE_INSERT && (rc = check_row(&c->old_row, i, "old", err)) != DW_OK) ||
            (c->op != DW_CHANGE_DELETE && (rc = check_row(&c->new_row, i, "new", err)) != DW_OK))
            return rc;
    }
    return DW_OK;
}

static dw_errcode finish(struct dw_buf *out, size_t start, struct dw_error *err)
{
    if (!dw_buf_failed(out))
        return DW_OK;
    /* drop the partial text; the failure flag stays for the caller to see */
    if (out->data && start <= out->len) {
        out->len = start;
        out->data[start] = '\0';
    }
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory while encoding");
}

dw_errcode dw_wire_encode_batch(const struct dw_batch *batch, struct dw_buf *out,
                                struct dw_error *err)
{
    size_t start = out->len;
    dw_errcode rc = check_batch(batch, err);

    if (rc != DW_OK)
        return rc;
    dw_wire_batch_begin(out, batch->id, batch->source_system, batch->source_database,
                        batch->source_xid, batch->origin, batch->deadline_ms);
    for (size_t i = 0; i < batch->nchanges; i++) {
        const struct dw_change *c = &batch->changes[i];

        dw_wire_batch_change(out, c->table, c->op, &c->old_row, &c->new_row);
    }
    dw_wire_batch_end(out);
    return finish(out, start, err);
}

static void put_opt_string(struct dw_buf *b, const char *key, const char *s)
{
    if (!s)
        return;
    dw_buf_puts(b, key);
    (void) put_string(b, s, strlen(s));
}

static void put_opt_int(struct dw_buf *b, const char *key, int64_t v)
{
    if (v < 0)
        return;
    dw_buf_puts(b, key);
    put_int(b, v);
}

dw_errcode dw_wire_encode_verdict(const struct dw_verdict *v, struct dw_buf *out,
                                  struct dw_error *err)
{
    size_t start = out->len;
    dw_errcode rc;
    const struct field fields[] = {
        {v->id, false, "/id"},
        {v->stage, false, "/stage"},
        {v->map, false, "/map"},
        {v->message, false, "/message"},
        {v->detail, false, "/detail"},
        {v->hint, false, "/hint"},
        {v->target_sqlstate, false, "/target_sqlstate"},
    };

    if ((unsigned) v->status >= N_STATUSES)
        return bad_field(err, DW_ERR_INTERNAL, "/status", "status %d is not a dw_verdict_status",
                         (int) v->status);
    if ((rc = check_fields(fields, sizeof(fields) / sizeof(fields[0]), err)) != DW_OK)
        return rc;
    /* what the decoder accepts, and what the extension can turn into an errcode */
    if (v->target_sqlstate && (strlen(v->target_sqlstate) != 5 ||
                               strspn(v->target_sqlstate, SQLSTATE_CHARS) != 5))
        return bad_field(err, DW_ERR_INTERNAL, "/target_sqlstate",
                         "\"%.16s\" is not five digits or uppercase letters", v->target_sqlstate);

    /* the order of DESIGN.md section 4; the comma before each optional field */
    dw_buf_putc(out, '{');
    put_opt_string(out, "\"id\":", v->id);
    dw_buf_puts(out, v->id ? ",\"status\":\"" : "\"status\":\"");
    dw_buf_puts(out, verdict_status_names[v->status]);
    dw_buf_putc(out, '"');
    put_opt_string(out, ",\"stage\":", v->stage);
    put_opt_string(out, ",\"map\":", v->map);
    put_opt_int(out, ",\"change\":", v->change);
    put_opt_string(out, ",\"message\":", v->message);
    put_opt_string(out, ",\"detail\":", v->detail);
    put_opt_string(out, ",\"hint\":", v->hint);
    put_opt_string(out, ",\"target_sqlstate\":", v->target_sqlstate);
    put_opt_int(out, ",\"elapsed_ms\":", v->elapsed_ms);
    put_opt_int(out, ",\"retry_after_s\":", v->retry_after_s);
    dw_buf_putc(out, '}');
    return finish(out, start, err);
}
