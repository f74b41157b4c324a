/*
 * Strict decoding of batches and verdicts from the JSON tree of dw_json.c.
 *
 * The parser has already rejected malformed JSON, invalid UTF-8, duplicate
 * keys and strings containing NUL; this file checks the shape: required keys,
 * types, known keys and ops, and that each change carries exactly the images
 * its op needs.  Every message starts with the JSON Pointer of the offending
 * value ("/changes/3/op: unknown op ..."), so the user whose COMMIT failed can
 * find the column at fault.  The path is a chain of small structs on the C
 * stack and is rendered only when an error is reported, so the happy path pays
 * nothing for it.
 *
 * Strings in the result point into the parse tree, which lives in the same
 * arena: nothing is copied twice.
 */
#include "bridge/common/dw_wire.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bridge/common/dw_json.h"

/* One step of the path from the root to the value being decoded. */
struct where {
    const struct where *up;
    const char *key;        /* NULL for an array index */
    size_t key_len;
    size_t index;
};

#define PATH_MAX_STEPS 16

static void render(const struct where *w, char *buf, size_t size)
{
    const struct where *steps[PATH_MAX_STEPS];
    size_t n = 0;

    buf[0] = '\0';
    for (; w && n < PATH_MAX_STEPS; w = w->up)
        steps[n++] = w;
    while (n-- > 0) {
        if (steps[n]->key) {
            dw_json_path_append(buf, size, steps[n]->key, steps[n]->key_len);
        } else {
            size_t pos = strlen(buf);

            if (pos + 1 < size)
                snprintf(buf + pos, size - pos, "/%zu", steps[n]->index);
        }
    }
}

static dw_errcode fail(struct dw_error *err, dw_errcode code, const struct where *w,
                       const char *fmt, ...) DW_PRINTF(4, 5);

static dw_errcode fail(struct dw_error *err, dw_errcode code, const struct where *w,
                       const char *fmt, ...)
{
    char path[160];
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    render(w, path, sizeof(path));
    if (path[0])
        return dw_error_set(err, code, "%s: %s", path, msg);
    return dw_error_set(err, code, "%s", msg);
}

static dw_errcode fail_nomem(struct dw_error *err)
{
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory while decoding");
}

/* A child step for member m of the object at up. */
static inline struct where member_at(const struct where *up, const struct dw_json_member *m)
{
    struct where w = {up, m->name, m->name_len, 0};

    return w;
}

static inline bool key_is(const struct dw_json_member *m, const char *name, size_t len)
{
    return m->name_len == len && memcmp(m->name, name, len) == 0;
}

#define KEY_IS(m, lit) key_is((m), (lit), sizeof(lit) - 1)

/* ---- typed accessors ---- */

static dw_errcode expect_type(const struct dw_json *v, dw_json_type type, const struct where *w,
                              struct dw_error *err)
{
    if (v->type == type)
        return DW_OK;
    return fail(err, DW_ERR_PROTOCOL, w, "expected %s, found %s", dw_json_type_name(type),
                dw_json_type_name(v->type));
}

/* A string; nonempty demands at least one character (names, ids). */
static dw_errcode get_string(const struct dw_json *v, bool nonempty, const struct where *w,
                             const char **out, struct dw_error *err)
{
    dw_errcode rc = expect_type(v, DW_JSON_STRING, w, err);

    if (rc != DW_OK)
        return rc;
    if (nonempty && v->len == 0)
        return fail(err, DW_ERR_PROTOCOL, w, "must not be empty");
    *out = v->u.string;
    return DW_OK;
}

/* An optional string: null and absence both leave *out NULL. */
static dw_errcode get_opt_string(const struct dw_json *v, const struct where *w, const char **out,
                                 struct dw_error *err)
{
    if (v->type == DW_JSON_NULL) {
        *out = NULL;
        return DW_OK;
    }
    if (v->type != DW_JSON_STRING)
        return fail(err, DW_ERR_PROTOCOL, w, "expected a string or null, found %s",
                    dw_json_type_name(v->type));
    *out = v->u.string;
    return DW_OK;
}

/*
 * An optional count (milliseconds, seconds, an index): a nonnegative integer
 * up to max; null leaves *out at -1.
 */
static dw_errcode get_opt_count(const struct dw_json *v, int64_t max, const struct where *w,
                                int64_t *out, struct dw_error *err)
{
    /* a number literal is plain ASCII, but may be very long */
    int shown = v->len > 32 ? 32 : (int) v->len;
    const char *more = v->len > 32 ? "..." : "";
    int64_t n;

    if (v->type == DW_JSON_NULL) {
        *out = -1;
        return DW_OK;
    }
    if (v->type != DW_JSON_NUMBER)
        return fail(err, DW_ERR_PROTOCOL, w, "expected an integer, found %s",
                    dw_json_type_name(v->type));
    if (!v->integer)
        return fail(err, DW_ERR_PROTOCOL, w, "expected an integer, found %.*s%s", shown,
                    v->u.number, more);
    if (!dw_json_get_int64(v, &n) || n > max)
        return fail(err, DW_ERR_PROTOCOL, w, "integer %.*s%s is out of range", shown, v->u.number,
                    more);
    if (n < 0)
        return fail(err, DW_ERR_PROTOCOL, w, "must not be negative, found %.*s%s", shown,
                    v->u.number, more);
    *out = n;
    return DW_OK;
}

static dw_errcode unknown_key(const struct dw_json_member *m, const struct where *up,
                              const char *valid, struct dw_error *err)
{
    struct where w = member_at(up, m);

    return fail(err, DW_ERR_PROTOCOL, &w, "unknown key (valid: %s)", valid);
}

static dw_errcode missing_key(const char *name, const struct where *w, struct dw_error *err)
{
    return fail(err, DW_ERR_PROTOCOL, w, "missing required key \"%s\"", name);
}

static dw_errcode parse_tree(const char *data, size_t len, size_t max_bytes, const char *what,
                             struct dw_arena *arena, const struct dw_json **root,
                             struct dw_error *err)
{
    struct dw_json_limits limits = {max_bytes, DW_WIRE_MAX_DEPTH};
    struct dw_json *tree;
    dw_errcode rc;

    if (len > max_bytes)
        return dw_error_set(err, DW_ERR_LIMIT, "%s of %zu bytes exceeds the limit of %zu bytes",
                            what, len, max_bytes);
    rc = dw_json_parse(data, len, &limits, arena, &tree, err);
    if (rc != DW_OK)
        return rc;
    if (tree->type != DW_JSON_OBJECT)
        return dw_error_set(err, DW_ERR_PROTOCOL, "expected a %s object, found %s", what,
                            dw_json_type_name(tree->type));
    *root = tree;
    return DW_OK;
}

/* ---- batch ---- */

static dw_errcode decode_row(const struct dw_json *v, const struct where *w, struct dw_row *row,
                             struct dw_arena *arena, struct dw_error *err)
{
    dw_errcode rc = expect_type(v, DW_JSON_OBJECT, w, err);
    size_t n = v->len;

    if (rc != DW_OK)
        return rc;
    row->ncols = n;
    row->names = NULL;
    row->values = NULL;
    if (n == 0)
        return DW_OK;
    /* n is bounded by the input size, so this cannot overflow */
    row->names = dw_arena_alloc(arena, 2 * n * sizeof(*row->names));
    if (!row->names)
        return fail_nomem(err);
    row->values = row->names + n;
    for (size_t i = 0; i < n; i++) {
        const struct dw_json_member *m = &v->u.members[i];

        if (m->name_len == 0) {
            struct where wc = member_at(w, m);

            return fail(err, DW_ERR_PROTOCOL, &wc, "column name must not be empty");
        }
        row->names[i] = m->name;
        if (m->value.type == DW_JSON_STRING) {
            row->values[i] = m->value.u.string;
        } else if (m->value.type == DW_JSON_NULL) {
            row->values[i] = NULL;
        } else {
            struct where wc = member_at(w, m);

            return fail(err, DW_ERR_PROTOCOL, &wc, "expected a string or null, found %s",
                        dw_json_type_name(m->value.type));
        }
    }
    return DW_OK;
}

static dw_errcode decode_op(const struct dw_json *v, const struct where *w, dw_change_op *op,
                            struct dw_error *err)
{
    static const struct {
        const char *name;
        dw_change_op op;
    } ops[] = {
        {"insert", DW_CHANGE_INSERT},
        {"update", DW_CHANGE_UPDATE},
        {"delete", DW_CHANGE_DELETE},
    };
    char q[64];
    dw_errcode rc = expect_type(v, DW_JSON_STRING, w, err);

    if (rc != DW_OK)
        return rc;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(v->u.string, ops[i].name) == 0) {
            *op = ops[i].op;
            return DW_OK;
        }
    }
    dw_json_quote(q, sizeof(q), v->u.string, v->len);
    return fail(err, DW_ERR_PROTOCOL, w, "unknown op %s (valid: insert, update, delete)", q);
}

static dw_errcode decode_change(const struct dw_json *v, const struct where *w,
                                struct dw_change *c, struct dw_arena *arena, struct dw_error *err)
{
    const struct dw_json_member *old_m = NULL, *new_m = NULL;
    bool have_table = false, have_op = false;
    const char *opname;
    dw_errcode rc = expect_type(v, DW_JSON_OBJECT, w, err);

    if (rc != DW_OK)
        return rc;
    for (size_t i = 0; i < v->len; i++) {
        const struct dw_json_member *m = &v->u.members[i];
        struct where wm = member_at(w, m);

        if (KEY_IS(m, "table")) {
            rc = get_string(&m->value, true, &wm, &c->table, err);
            have_table = true;
        } else if (KEY_IS(m, "op")) {
            rc = decode_op(&m->value, &wm, &c->op, err);
            have_op = true;
        } else if (KEY_IS(m, "old")) {
            old_m = m;
        } else if (KEY_IS(m, "new")) {
            new_m = m;
        } else {
            rc = unknown_key(m, w, "table, op, old, new", err);
        }
        if (rc != DW_OK)
            return rc;
    }
    if (!have_table)
        return missing_key("table", w, err);
    if (!have_op)
        return missing_key("op", w, err);

    /* the op decides which images must be there and which must not */
    opname = dw_change_op_name(c->op);
    if (c->op == DW_CHANGE_INSERT && old_m) {
        struct where wm = member_at(w, old_m);

        return fail(err, DW_ERR_PROTOCOL, &wm, "not allowed for op \"%s\"", opname);
    }
    if (c->op == DW_CHANGE_DELETE && new_m) {
        struct where wm = member_at(w, new_m);

        return fail(err, DW_ERR_PROTOCOL, &wm, "not allowed for op \"%s\"", opname);
    }
    if (c->op != DW_CHANGE_INSERT && !old_m)
        return fail(err, DW_ERR_PROTOCOL, w, "missing required key \"old\" for op \"%s\"", opname);
    if (c->op != DW_CHANGE_DELETE && !new_m)
        return fail(err, DW_ERR_PROTOCOL, w, "missing required key \"new\" for op \"%s\"", opname);
    if (old_m) {
        struct where wm = member_at(w, old_m);

        if ((rc = decode_row(&old_m->value, &wm, &c->old_row, arena, err)) != DW_OK)
            return rc;
    }
    if (new_m) {
        struct where wm = member_at(w, new_m);

        if ((rc = decode_row(&new_m->value, &wm, &c->new_row, arena, err)) != DW_OK)
            return rc;
    }
    return DW_OK;
}

static dw_errcode decode_changes(const struct dw_json *v, const struct where *w,
                                 struct dw_batch *b, struct dw_arena *arena, struct dw_error *err)
{
    dw_errcode rc = expect_type(v, DW_JSON_ARRAY, w, err);

    if (rc != DW_OK)
        return rc;
    b->nchanges = v->len;
    b->changes = NULL;
    if (v->len == 0)
        return DW_OK;
    b->changes = dw_arena_zalloc(arena, v->len * sizeof(*b->changes));
    if (!b->changes)
        return fail_nomem(err);
    for (size_t i = 0; i < v->len; i++) {
        struct where wi = {w, NULL, 0, i};

        if ((rc = decode_change(&v->u.items[i], &wi, &b->changes[i], arena, err)) != DW_OK)
            return rc;
    }
    return DW_OK;
}

static dw_errcode decode_source(const struct dw_json *v, const struct where *w,
                                struct dw_batch *b, struct dw_error *err)
{
    dw_errcode rc = expect_type(v, DW_JSON_OBJECT, w, err);

    if (rc != DW_OK)
        return rc;
    for (size_t i = 0; i < v->len; i++) {
        const struct dw_json_member *m = &v->u.members[i];
        struct where wm = member_at(w, m);

        if (KEY_IS(m, "system"))
            rc = get_string(&m->value, true, &wm, &b->source_system, err);
        else if (KEY_IS(m, "database"))
            rc = get_string(&m->value, true, &wm, &b->source_database, err);
        else if (KEY_IS(m, "xid"))
            rc = get_string(&m->value, true, &wm, &b->source_xid, err);
        else
            rc = unknown_key(m, w, "system, database, xid", err);
        if (rc != DW_OK)
            return rc;
    }
    if (!b->source_system)
        return missing_key("system", w, err);
    if (!b->source_database)
        return missing_key("database", w, err);
    if (!b->source_xid)
        return missing_key("xid", w, err);
    return DW_OK;
}

dw_errcode dw_wire_decode_batch(const char *data, size_t len, struct dw_arena *arena,
                                struct dw_batch **out, struct dw_error *err)
{
    const struct dw_json *root;
    struct dw_batch *b;
    bool have_source = false, have_changes = false;
    dw_errcode rc;

    *out = NULL;
    rc = parse_tree(data, len, DW_WIRE_MAX_BATCH_BYTES, "batch", arena, &root, err);
    if (rc != DW_OK)
        return rc;
    b = dw_arena_zalloc(arena, sizeof(*b));
    if (!b)
        return fail_nomem(err);
    b->deadline_ms = -1;
    for (size_t i = 0; i < root->len; i++) {
        const struct dw_json_member *m = &root->u.members[i];
        struct where wm = member_at(NULL, m);

        if (KEY_IS(m, "id")) {
            rc = get_string(&m->value, true, &wm, &b->id, err);
        } else if (KEY_IS(m, "source")) {
            rc = decode_source(&m->value, &wm, b, err);
            have_source = true;
        } else if (KEY_IS(m, "origin")) {
            rc = get_opt_string(&m->value, &wm, &b->origin, err);
        } else if (KEY_IS(m, "deadline_ms")) {
            rc = get_opt_count(&m->value, INT64_MAX, &wm, &b->deadline_ms, err);
        } else if (KEY_IS(m, "changes")) {
            rc = decode_changes(&m->value, &wm, b, arena, err);
            have_changes = true;
        } else {
            rc = unknown_key(m, NULL, "id, source, origin, deadline_ms, changes", err);
        }
        if (rc != DW_OK)
            return rc;
    }
    if (!b->id)
        return missing_key("id", NULL, err);
    if (!have_source)
        return missing_key("source", NULL, err);
    if (!have_changes)
        return missing_key("changes", NULL, err);
    *out = b;
    return DW_OK;
}

/* ---- verdict ---- */

static dw_errcode decode_status(const struct dw_json *v, const struct where *w,
                                dw_verdict_status *status, struct dw_error *err)
{
    char q[64];
    dw_errcode rc = expect_type(v, DW_JSON_STRING, w, err);

    if (rc != DW_OK)
        return rc;
    for (int s = DW_VERDICT_PREPARED; s <= DW_VERDICT_UNAVAILABLE; s++) {
        if (strcmp(v->u.string, dw_verdict_status_name((dw_verdict_status) s)) == 0) {
            *status = (dw_verdict_status) s;
            return DW_OK;
        }
    }
    dw_json_quote(q, sizeof(q), v->u.string, v->len);
    return fail(err, DW_ERR_PROTOCOL, w,
                "unknown status %s (valid: prepared, committed, rejected, throttled, unavailable)",
                q);
}

/* SQLSTATEs are five digits or uppercase letters; the extension builds an errcode from them. */
static dw_errcode get_sqlstate(const struct dw_json *v, const struct where *w, const char **out,
                               struct dw_error *err)
{
    char q[64];
    dw_errcode rc = get_opt_string(v, w, out, err);

    if (rc != DW_OK || !*out)
        return rc;
    if (v->len == 5 && strspn(*out, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5)
        return DW_OK;
    dw_json_quote(q, sizeof(q), v->u.string, v->len);
    return fail(err, DW_ERR_PROTOCOL, w,
                "expected five digits or uppercase letters, found %s", q);
}

dw_errcode dw_wire_decode_verdict(const char *data, size_t len, struct dw_arena *arena,
                                  struct dw_verdict **out, struct dw_error *err)
{
    const struct dw_json *root;
    struct dw_verdict *v;
    bool have_status = false;
    int64_t change = -1;
    dw_errcode rc;

    *out = NULL;
    rc = parse_tree(data, len, DW_WIRE_MAX_VERDICT_BYTES, "verdict", arena, &root, err);
    if (rc != DW_OK)
        return rc;
    v = dw_arena_alloc(arena, sizeof(*v));
    if (!v)
        return fail_nomem(err);
    dw_verdict_init(v, NULL, DW_VERDICT_REJECTED);
    for (size_t i = 0; i < root->len; i++) {
        const struct dw_json_member *m = &root->u.members[i];
        const struct dw_json *val = &m->value;
        struct where wm = member_at(NULL, m);

        if (KEY_IS(m, "id")) {
            rc = get_opt_string(val, &wm, &v->id, err);
        } else if (KEY_IS(m, "status")) {
            rc = decode_status(val, &wm, &v->status, err);
            have_status = true;
        } else if (KEY_IS(m, "stage")) {
            rc = get_opt_string(val, &wm, &v->stage, err);
        } else if (KEY_IS(m, "map")) {
            rc = get_opt_string(val, &wm, &v->map, err);
        } else if (KEY_IS(m, "change")) {
            rc = get_opt_count(val, LONG_MAX, &wm, &change, err);
        } else if (KEY_IS(m, "message")) {
            rc = get_opt_string(val, &wm, &v->message, err);
        } else if (KEY_IS(m, "detail")) {
            rc = get_opt_string(val, &wm, &v->detail, err);
        } else if (KEY_IS(m, "hint")) {
            rc = get_opt_string(val, &wm, &v->hint, err);
        } else if (KEY_IS(m, "target_sqlstate")) {
            rc = get_sqlstate(val, &wm, &v->target_sqlstate, err);
        } else if (KEY_IS(m, "elapsed_ms")) {
            rc = get_opt_count(val, INT64_MAX, &wm, &v->elapsed_ms, err);
        } else if (KEY_IS(m, "retry_after_s")) {
            rc = get_opt_count(val, INT64_MAX, &wm, &v->retry_after_s, err);
        } else {
            rc = unknown_key(m, NULL,
                             "id, status, stage, map, change, message, detail, hint, "
                             "target_sqlstate, elapsed_ms, retry_after_s", err);
        }
        if (rc != DW_OK)
            return rc;
    }
    if (!have_status)
        return missing_key("status", NULL, err);
    v->change = (long) change;
    *out = v;
    return DW_OK;
}
