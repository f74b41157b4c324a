/*
 * The mapping engine: a decoded batch in, the ordered target operations out
 * (DESIGN.md section 5).  Inserts and updates become upserts by target key
 * with the full mapped row, deletes become deletes by target key; filters
 * decide by their transition between the old and new row image; an update
 * that changes no mapped column is dropped; a key change is a delete of the
 * old key followed by an upsert of the new one.
 *
 * This runs for every committed source transaction, so it works on indexes
 * precomputed at load (dw_map_index.c): each row image is resolved once into
 * an array indexed by the table's column slots, maps and values are found by
 * hash or binary search, and all memory comes from the caller's arena.  The
 * mapset is only read.
 */
#include "maps/dw_map_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Marks a column the row image does not carry (distinct from SQL null). */
static const char absent_marker[1];
#define ABSENT absent_marker

struct engine {
    const struct dw_mapset *set;
    struct dw_arena *arena;
    struct dw_oplist *out;
    struct dw_error *err;
    size_t cap;                  /* capacity of out->ops */
    const char **oldv;           /* the old row image by slot */
    const char **newv;           /* the new row image by slot */
    size_t conn;                 /* connector of the first operation, DW_MAP_NONE before */
    bool *conn_seen;             /* per interned connector (only with several connectors) */
    size_t *conn_order;          /* connectors in first-use order */
    size_t nconn;
    size_t conflict_change;      /* first change sent to a second connector, DW_MAP_NONE if none */
    const char *conflict_map;
    char conflict_detail[256];
};

/* ---- messages ---- */

/* "change 3, source key (id)=(17)", or "change 3" when the key is unknown. */
static void key_detail(char *buf, size_t size, const struct dw_map *m, size_t change,
                       const char *const *vals)
{
    size_t pos;
    char v[128];

    pos = (size_t) snprintf(buf, size, "change %zu", change);
    if (!m || !vals || pos >= size)
        return;
    for (size_t k = 0; k < m->nkey; k++)
        if (vals[m->plan->key_slot[k]] == ABSENT)
            return;
    pos += (size_t) snprintf(buf + pos, size - pos, ", source key (");
    for (size_t k = 0; k < m->nkey && pos < size; k++)
        pos += (size_t) snprintf(buf + pos, size - pos, "%s%s", k ? ", " : "", m->source_key[k]);
    if (pos < size)
        pos += (size_t) snprintf(buf + pos, size - pos, ")=(");
    for (size_t k = 0; k < m->nkey && pos < size; k++) {
        const char *val = vals[m->plan->key_slot[k]];

        if (val) {
            /* unquoted as PostgreSQL writes keys, but escaped to stay on one line */
            size_t len;

            dw_map_quote(v, sizeof(v), val);
            len = strlen(v);
            if (len >= 2 && v[len - 1] == '"')
                v[len - 1] = '\0';
            pos += (size_t) snprintf(buf + pos, size - pos, "%s%s", k ? ", " : "", v + 1);
        } else
            pos += (size_t) snprintf(buf + pos, size - pos, "%snull", k ? ", " : "");
    }
    if (pos < size)
        snprintf(buf + pos, size - pos, ")");
}

/* Reject the batch because of change `change` (and map m, if any). */
static dw_errcode reject(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                         const char *hint, const char *fmt, ...) DW_PRINTF(6, 7);
static dw_errcode reject(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                         const char *hint, const char *fmt, ...)
{
    char msg[sizeof(e->err->message)], detail[sizeof(e->err->detail)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dw_error_set(e->err, DW_ERR_MAP, "%s", msg);
    key_detail(detail, sizeof(detail), m, change, vals);
    dw_error_detail(e->err, "%s", detail);
    if (hint)
        dw_error_hint(e->err, "%s", hint);
    e->out->fail_map = m ? m->name : NULL;
    e->out->fail_change = (long) change;
    return DW_ERR_MAP;
}

static dw_errcode missing(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                          size_t slot, const char *image)
{
    const struct dw_map_table *t = &e->set->index->tables[m->plan->table];
    char qm[128], qc[128];

    dw_map_quote(qm, sizeof(qm), m->name);
    dw_map_quote(qc, sizeof(qc), t->cols[slot]);
    return reject(e, m, change, vals,
                  "The capture trigger of the table may be out of date; reinstall it with \"dwctl hooks install\".",
                  "table map %s: column %s is missing from the %s row image", qm, qc, image);
}

static dw_errcode nomem(struct engine *e)
{
    return dw_error_set(e->err, DW_ERR_NOMEM, "out of memory while mapping a batch");
}

/* ---- row images ---- */

/* Spread a row image over the table's slots; columns no map reads are ignored. */
static void resolve(const struct dw_map_table *t, const struct dw_row *row, const char **vals)
{
    for (size_t s = 0; s < t->ncols; s++)
        vals[s] = ABSENT;
    for (size_t j = 0; j < row->ncols; j++) {
        const char *name = row->names[j];
        size_t slot;

        if (!name)
            continue;
        /* the capture trigger sends the columns in slot order: try that first */
        if (j < t->ncols && strcmp(t->cols[j], name) == 0)
            slot = j;
        else
            slot = dw_map_index_column(t, name);
        if (slot != DW_MAP_NONE)
            vals[slot] = row->values[j];
    }
}

static bool same(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static int cmp_str(const void *key, const void *elem)
{
    return strcmp((const char *) key, *(const char *const *) elem);
}

/* Whether a row image passes the map's filter. */
static dw_errcode in_filter(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                            const char *image, bool *in)
{
    const struct dw_map_plan *p = m->plan;
    const char *v;

    *in = true;
    if (p->filter_slot == DW_MAP_NONE)
        return DW_OK;
    v = vals[p->filter_slot];
    if (v == ABSENT)
        return missing(e, m, change, vals, p->filter_slot, image);
    if (!v)
        *in = p->filter_null;
    else
        *in = bsearch(v, p->filter_sorted, p->nfilter, sizeof(*p->filter_sorted), cmp_str) != NULL;
    return DW_OK;
}

/* ---- operations ---- */

static struct dw_target_op *new_op(struct engine *e, const struct dw_map *m, size_t change, dw_op_kind kind,
                                   const char *const *vals)
{
    struct dw_oplist *out = e->out;
    struct dw_target_op *op;
    size_t conn = m->plan->connector;

    if (out->nops == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 16;
        struct dw_target_op *ops = dw_arena_alloc(e->arena, ncap * sizeof(*ops));

        if (!ops)
            return NULL;
        if (out->nops)
            memcpy(ops, out->ops, out->nops * sizeof(*ops));
        out->ops = ops;
        e->cap = ncap;
    }
    if (e->conn == DW_MAP_NONE)
        e->conn = conn;
    if (e->conn_seen && !e->conn_seen[conn]) {
        e->conn_seen[conn] = true;
        e->conn_order[e->nconn++] = conn;
        if (conn != e->conn && e->conflict_change == DW_MAP_NONE) {
            e->conflict_change = change;
            e->conflict_map = m->name;
            key_detail(e->conflict_detail, sizeof(e->conflict_detail), m, change, vals);
        }
    }
    op = &out->ops[out->nops++];
    op->kind = kind;
    op->connector = m->connector;
    op->table = m->target_table;
    op->nkey = m->nkey;
    op->columns = m->plan->columns;
    op->map = m->name;
    op->change = change;
    return op;
}

/* The key of a row image, checked: present and not null. */
static dw_errcode key_values(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                             const char *image, const char **dst)
{
    for (size_t k = 0; k < m->nkey; k++) {
        size_t slot = m->plan->key_slot[k];
        const char *v = vals[slot];

        if (v == ABSENT)
            return missing(e, m, change, vals, slot, image);
        if (!v) {
            char qm[128], qc[128];

            dw_map_quote(qm, sizeof(qm), m->name);
            dw_map_quote(qc, sizeof(qc), m->source_key[k]);
            return reject(e, m, change, vals, NULL, "table map %s: source key column %s is null", qm, qc);
        }
        dst[k] = v;
    }
    return DW_OK;
}

static dw_errcode emit_delete(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals)
{
    const char **values = dw_arena_alloc(e->arena, m->nkey * sizeof(*values));
    struct dw_target_op *op;
    dw_errcode rc;

    if (!values)
        return nomem(e);
    if ((rc = key_values(e, m, change, vals, "old", values)) != DW_OK)
        return rc;
    if (!(op = new_op(e, m, change, DW_OP_DELETE, vals)))
        return nomem(e);
    op->ncolumns = m->nkey;
    op->values = values;
    return DW_OK;
}

static int cmp_entry(const void *key, const void *elem, const struct dw_field *f)
{
    return strcmp((const char *) key, f->values[*(const size_t *) elem].from);
}

/* Value-map lookup by binary search over the entries sorted at load. */
static const struct dw_value_entry *lookup(const struct dw_field *f, const size_t *order, const char *v)
{
    size_t lo = 0, hi = f->nvalues;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_entry(v, &order[mid], f);

        if (r == 0)
            return &f->values[order[mid]];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- lookups ---- */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '.' || ch == '_' || ch == '~' || ch == ':';
}

/*
 * Percent-encode for a URL path segment as the odata connector encodes keys:
 * all but ALPHA DIGIT - . _ ~ :, and with quote_string a ' becomes ''.
 */
static void put_pct(struct dw_buf *b, const char *s, bool quote_string)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char ch = (unsigned char) *s;

        if (quote_string && ch == '\'') {
            dw_buf_puts(b, "''");
        } else if (unreserved(ch)) {
            dw_buf_putc(b, (char) ch);
        } else {
            dw_buf_putc(b, '%');
            dw_buf_putc(b, hex[ch >> 4]);
            dw_buf_putc(b, hex[ch & 15]);
        }
    }
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Append the key literal of v; false when v is not a value of the type. */
static bool put_literal(struct dw_buf *b, dw_lookup_type type, const char *v)
{
    const char *digits, *dot;
    bool neg = false;

    switch (type) {
    case DW_LOOKUP_STRING:
        dw_buf_putc(b, '\'');
        put_pct(b, v, true);
        dw_buf_putc(b, '\'');
        return true;
    case DW_LOOKUP_INTEGER:
    case DW_LOOKUP_DECIMAL:
        digits = v;
        if (*digits == '+' || *digits == '-')
            neg = *digits++ == '-';
        dot = type == DW_LOOKUP_DECIMAL ? strchr(digits, '.') : NULL;
        if (dot ? !all_digits(digits, (size_t) (dot - digits)) || !all_digits(dot + 1, strlen(dot + 1))
                : !all_digits(digits, strlen(digits)))
            return false;
        /* one form per value: no sign for zero, no leading zeros */
        while (digits[0] == '0' && digits[1] >= '0' && digits[1] <= '9')
            digits++;
        if (neg && strspn(digits, "0.") != strlen(digits))
            dw_buf_putc(b, '-');
        dw_buf_puts(b, digits);
        return true;
    case DW_LOOKUP_GUID:
        if (strlen(v) != 36)
            return false;
        for (size_t i = 0; i < 36; i++) {
            unsigned char ch = (unsigned char) v[i];
            bool dash = i == 8 || i == 13 || i == 18 || i == 23;

            if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')))
                return false;
        }
        for (size_t i = 0; i < 36; i++) {
            unsigned char ch = (unsigned char) v[i];

            dw_buf_putc(b, (char) (ch >= 'A' && ch <= 'F' ? ch | 0x20 : ch));
        }
        return true;
    }
    return false;
}

static const char *type_name(dw_lookup_type type)
{
    switch (type) {
    case DW_LOOKUP_STRING:
        return "string";
    case DW_LOOKUP_INTEGER:
        return "integer";
    case DW_LOOKUP_DECIMAL:
        return "decimal";
    case DW_LOOKUP_GUID:
        return "GUID";
    }
    return "value";
}

/*
 * A lookup field's value: the reference "/Set(prop=literal,...)", or null
 * when a key value is null (no parent; "required" then rejects).
 */
static dw_errcode lookup_value(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                               size_t fi, const char **dst)
{
    const struct dw_field *f = &m->fields[fi];
    const struct dw_lookup *lk = f->lookup;
    const size_t *slots = m->plan->lookup_slots[fi];
    char qm[128], qf[128], qv[128], qc[128], qp[128];
    struct dw_buf b;
    char *s;

    *dst = NULL;
    for (size_t k = 0; k < lk->nkeys; k++) {
        const char *v = vals[slots[k]];

        if (v == ABSENT)
            return missing(e, m, change, vals, slots[k], "new");
        if (!v) {
            if (!f->required)
                return DW_OK;
            dw_map_quote(qm, sizeof(qm), m->name);
            dw_map_quote(qf, sizeof(qf), f->target);
            dw_map_quote(qc, sizeof(qc), lk->keys[k].source);
            return reject(e, m, change, vals, NULL,
                          "table map %s field %s: required lookup key column %s is null", qm, qf, qc);
        }
    }
    dw_buf_init(&b);
    dw_buf_putc(&b, '/');
    put_pct(&b, lk->entity_set, false);
    dw_buf_putc(&b, '(');
    for (size_t k = 0; k < lk->nkeys; k++) {
        const char *v = vals[slots[k]];

        if (k)
            dw_buf_putc(&b, ',');
        put_pct(&b, lk->keys[k].property, false);
        dw_buf_putc(&b, '=');
        if (!put_literal(&b, lk->keys[k].type, v)) {
            dw_buf_cleanup(&b);
            dw_map_quote(qm, sizeof(qm), m->name);
            dw_map_quote(qf, sizeof(qf), f->target);
            dw_map_quote(qv, sizeof(qv), v);
            dw_map_quote(qp, sizeof(qp), lk->keys[k].property);
            return reject(e, m, change, vals, NULL,
                          "table map %s field %s: value %s is not a valid %s for lookup key property %s",
                          qm, qf, qv, type_name(lk->keys[k].type), qp);
        }
    }
    dw_buf_putc(&b, ')');
    if (dw_buf_failed(&b) || !(s = dw_arena_strdup(e->arena, b.data))) {
        dw_buf_cleanup(&b);
        return nomem(e);
    }
    dw_buf_cleanup(&b);
    *dst = s;
    return DW_OK;
}

/* One target value: constant, lookup, or the source value through the value map. */
static dw_errcode field_value(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals,
                              size_t fi, const char **dst)
{
    const struct dw_field *f = &m->fields[fi];
    const struct dw_map_plan *p = m->plan;
    const char *v;
    char qm[128], qf[128], qv[128];

    if (f->has_const) {
        *dst = f->const_value;
        return DW_OK;
    }
    if (f->lookup)
        return lookup_value(e, m, change, vals, fi, dst);
    v = vals[p->field_slot[fi]];
    if (v == ABSENT)
        return missing(e, m, change, vals, p->field_slot[fi], "new");
    if (v && f->has_values) {
        const struct dw_value_entry *hit = lookup(f, p->value_order[fi], v);

        if (hit)
            *dst = hit->to;
        else if (f->has_default)
            *dst = f->default_value;
        else {
            dw_map_quote(qm, sizeof(qm), m->name);
            dw_map_quote(qf, sizeof(qf), f->target);
            dw_map_quote(qv, sizeof(qv), v);
            return reject(e, m, change, vals, NULL,
                          "table map %s field %s: value %s has no entry in \"values\" and no \"default\"",
                          qm, qf, qv);
        }
    } else
        *dst = v;   /* SQL null passes through a value map unmapped */
    if (f->required && !*dst) {
        dw_map_quote(qm, sizeof(qm), m->name);
        dw_map_quote(qf, sizeof(qf), f->target);
        if (!v)
            return reject(e, m, change, vals, NULL, "table map %s field %s: required value is null", qm, qf);
        dw_map_quote(qv, sizeof(qv), v);
        return reject(e, m, change, vals, NULL,
                      "table map %s field %s: value %s maps to null, but the field is required", qm, qf, qv);
    }
    return DW_OK;
}

static dw_errcode emit_upsert(struct engine *e, const struct dw_map *m, size_t change, const char *const *vals)
{
    const struct dw_map_plan *p = m->plan;
    const char **values = dw_arena_alloc(e->arena, p->ncolumns * sizeof(*values));
    struct dw_target_op *op;
    dw_errcode rc;

    if (!values)
        return nomem(e);
    if ((rc = key_values(e, m, change, vals, "new", values)) != DW_OK)
        return rc;
    for (size_t c = m->nkey; c < p->ncolumns; c++)
        if ((rc = field_value(e, m, change, vals, p->column_field[c], &values[c])) != DW_OK)
            return rc;
    if (!(op = new_op(e, m, change, DW_OP_UPSERT, vals)))
        return nomem(e);
    op->ncolumns = p->ncolumns;
    op->values = values;
    return DW_OK;
}

/* ---- one change through one map ---- */

static dw_errcode map_change(struct engine *e, const struct dw_map *m, size_t change, dw_change_op kind)
{
    const struct dw_map_plan *p = m->plan;
    bool old_in = false, new_in = false, changed = false, key_changed = false;
    dw_errcode rc;

    if (kind != DW_CHANGE_INSERT && (rc = in_filter(e, m, change, e->oldv, "old", &old_in)) != DW_OK)
        return rc;
    if (kind != DW_CHANGE_DELETE && (rc = in_filter(e, m, change, e->newv, "new", &new_in)) != DW_OK)
        return rc;

    switch (kind) {
    case DW_CHANGE_INSERT:
        return new_in ? emit_upsert(e, m, change, e->newv) : DW_OK;
    case DW_CHANGE_DELETE:
        return old_in ? emit_delete(e, m, change, e->oldv) : DW_OK;
    case DW_CHANGE_UPDATE:
        break;
    }
    if (!old_in && !new_in)
        return DW_OK;
    if (!new_in)
        return emit_delete(e, m, change, e->oldv);   /* the row left the filter */
    if (!old_in)
        return emit_upsert(e, m, change, e->newv);   /* the row entered the filter */

    for (size_t i = 0; i < p->nmapped; i++) {
        size_t s = p->mapped_slots[i];

        if (e->oldv[s] == ABSENT)
            return missing(e, m, change, e->oldv, s, "old");
        if (e->newv[s] == ABSENT)
            return missing(e, m, change, e->newv, s, "new");
        if (!same(e->oldv[s], e->newv[s]))
            changed = true;
    }
    if (!changed)
        return DW_OK;
    for (size_t k = 0; k < m->nkey; k++)
        if (!same(e->oldv[p->key_slot[k]], e->newv[p->key_slot[k]]))
            key_changed = true;
    if (key_changed && (rc = emit_delete(e, m, change, e->oldv)) != DW_OK)
        return rc;
    return emit_upsert(e, m, change, e->newv);
}

dw_errcode dw_map_apply(const struct dw_mapset *set, const struct dw_batch *batch, struct dw_arena *arena,
                        struct dw_oplist *out, struct dw_error *err)
{
    const struct dw_mapset_index *ix = set->index;
    struct engine e = {.set = set, .arena = arena, .out = out, .err = err,
                       .conn = DW_MAP_NONE, .conflict_change = DW_MAP_NONE};
    const struct dw_map_table *t = NULL;
    const char *last_table = NULL;
    dw_errcode rc = DW_OK;

    memset(out, 0, sizeof(*out));
    out->fail_change = -1;
    if (batch->nchanges == 0)
        return DW_OK;
    e.oldv = dw_arena_alloc(arena, (ix->max_cols + 1) * sizeof(*e.oldv));
    e.newv = dw_arena_alloc(arena, (ix->max_cols + 1) * sizeof(*e.newv));
    if (!e.oldv || !e.newv)
        return nomem(&e);
    if (ix->nconnectors > 1) {
        e.conn_seen = dw_arena_zalloc(arena, ix->nconnectors * sizeof(*e.conn_seen));
        e.conn_order = dw_arena_alloc(arena, ix->nconnectors * sizeof(*e.conn_order));
        if (!e.conn_seen || !e.conn_order)
            return nomem(&e);
    }

    for (size_t i = 0; i < batch->nchanges && rc == DW_OK; i++) {
        const struct dw_change *ch = &batch->changes[i];

        /* consecutive changes usually touch the same table */
        if (!last_table || !ch->table || (ch->table != last_table && strcmp(ch->table, last_table) != 0)) {
            t = dw_map_index_table(set, ch->table);
            last_table = ch->table;
        }
        if (!t) {
            char qt[128];

            dw_map_quote(qt, sizeof(qt), ch->table);
            rc = reject(&e, NULL, i, NULL, NULL, "no table map covers table %s", qt);
            break;
        }
        if (ch->op != DW_CHANGE_INSERT && ch->op != DW_CHANGE_UPDATE && ch->op != DW_CHANGE_DELETE) {
            rc = dw_error_set(err, DW_ERR_PROTOCOL, "change %zu has an unknown operation", i);
            out->fail_change = (long) i;
            break;
        }
        if (ch->op != DW_CHANGE_INSERT)
            resolve(t, &ch->old_row, e.oldv);
        if (ch->op != DW_CHANGE_DELETE)
            resolve(t, &ch->new_row, e.newv);
        for (size_t k = 0; k < t->nmaps && rc == DW_OK; k++)
            rc = map_change(&e, &set->maps[t->maps[k]], i, ch->op);
    }

    if (rc == DW_OK && e.conflict_change != DW_MAP_NONE) {
        char names[512];
        size_t pos = 0;

        names[0] = '\0';
        for (size_t k = 0; k < e.nconn && pos < sizeof(names); k++) {
            char qc[128];

            dw_map_quote(qc, sizeof(qc), ix->connectors[e.conn_order[k]]);
            pos += (size_t) snprintf(names + pos, sizeof(names) - pos, "%s%s", k ? ", " : "", qc);
        }
        rc = dw_error_set(err, DW_ERR_MAP, "batch writes to more than one connector: %s", names);
        dw_error_detail(err, "%s", e.conflict_detail);
        dw_error_hint(err, "Until multi-target transactions exist, one source transaction may only change "
                      "tables whose maps share a connector.");
        out->fail_map = e.conflict_map;
        out->fail_change = (long) e.conflict_change;
    }
    if (rc != DW_OK) {
        out->nops = 0;
        out->ops = NULL;
        out->connector = NULL;
        return rc;
    }
    out->connector = out->nops ? ix->connectors[e.conn] : NULL;
    return DW_OK;
}
