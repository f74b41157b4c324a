/*
 * Validation of table-map files: one parsed JSON document at a time
 * (dw_map_validate_file), then the checks that need every file
 * (dw_map_validate_set: duplicate names, depends_on, cycles and the
 * dependency order).
 *
 * The validator reports every problem it can find rather than stopping at the
 * first, so a user fixes a file in one round.  It fills struct dw_map as far
 * as the document allows: an array element that is invalid leaves a NULL hole
 * at its position, so that JSON paths computed later (for key mapping,
 * duplicate and dependency errors) still match the file.  Holes only exist in
 * a failed load; a mapset handed to callers has none.
 */
#include "maps/dw_map_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Validation state of one file: where we are in the document. */
struct vctx {
    struct dw_map_loader *ld;
    struct dw_map_file *file;
    struct dw_arena *a;
    char path[1024];
    size_t plen;
};

static const char *const top_keys[] = {"map", "source", "target", "filter", "fields", "depends_on", NULL};
static const char *const source_keys[] = {"table", "key", NULL};
static const char *const target_keys[] = {"connector", "table", "key", NULL};
static const char *const filter_keys[] = {"column", "in", NULL};
static const char *const field_keys[] = {"source", "target", "required", "values", "default", "const",
                                          "lookup", NULL};
static const char *const lookup_keys[] = {"entity_set", "key", NULL};
static const char *const lookup_key_keys[] = {"source", "type", NULL};

/* The lookup key types a map may name, and how each is written. */
static const struct {
    const char *name;
    dw_lookup_type type;
} lookup_types[] = {
    {"Edm.String", DW_LOOKUP_STRING},   {"Edm.Int16", DW_LOOKUP_INTEGER},
    {"Edm.Int32", DW_LOOKUP_INTEGER},   {"Edm.Int64", DW_LOOKUP_INTEGER},
    {"Edm.Byte", DW_LOOKUP_INTEGER},    {"Edm.SByte", DW_LOOKUP_INTEGER},
    {"Edm.Decimal", DW_LOOKUP_DECIMAL}, {"Edm.Guid", DW_LOOKUP_GUID},
};

/* ---- paths and messages ---- */

static void path_append(struct vctx *c, const char *s)
{
    size_t room = sizeof(c->path) - 1;

    for (; *s && c->plen < room; s++) {
        unsigned char ch = (unsigned char) *s;
        char esc[8];
        size_t n;

        /* JSON Pointer escapes, plus control characters so a message stays on one line */
        if (ch == '~')
            n = (size_t) snprintf(esc, sizeof(esc), "~0");
        else if (ch == '/')
            n = (size_t) snprintf(esc, sizeof(esc), "~1");
        else if (ch < 0x20 || ch == 0x7f)
            n = (size_t) snprintf(esc, sizeof(esc), "\\u%04x", ch);
        else {
            esc[0] = (char) ch;
            n = 1;
        }
        if (c->plen + n > room)
            break;
        memcpy(c->path + c->plen, esc, n);
        c->plen += n;
    }
    c->path[c->plen] = '\0';
}

static size_t push(struct vctx *c, const char *key)
{
    size_t old = c->plen;

    if (c->plen + 1 < sizeof(c->path)) {
        c->path[c->plen++] = '/';
        c->path[c->plen] = '\0';
    }
    path_append(c, key);
    return old;
}

static size_t push_index(struct vctx *c, size_t i)
{
    char num[32];

    snprintf(num, sizeof(num), "%zu", i);
    return push(c, num);
}

static void pop(struct vctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

static const char *where(const struct vctx *c)
{
    return c->plen ? c->path : "/";
}

static void verr(struct vctx *c, const char *fmt, ...) DW_PRINTF(2, 3);
static void verr(struct vctx *c, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dw_map_file_error(c->ld, c->file, where(c), "%s", msg);
}

/* Error at a child key of the current object. */
static void verr_at(struct vctx *c, const char *key, const char *fmt, ...) DW_PRINTF(3, 4);
static void verr_at(struct vctx *c, const char *key, const char *fmt, ...)
{
    char msg[2048];
    size_t old = push(c, key);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dw_map_file_error(c->ld, c->file, where(c), "%s", msg);
    pop(c, old);
}

/* Out of memory: the load fails with DW_ERR_NOMEM rather than a line about the file. */
static void oom(struct vctx *c)
{
    c->ld->nomem = true;
}

/* A quoted, escaped copy of s for a message; lives in the scratch arena. */
static const char *q(struct vctx *c, const char *s)
{
    size_t size = 200;
    char *buf = dw_arena_alloc(&c->ld->scratch, size);

    if (!buf)
        return "\"...\"";
    dw_map_quote(buf, size, s);
    return buf;
}

static const char *jtype(const cJSON *j)
{
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNull(j))
        return "null";
    return "an invalid value";
}

static const char *key_list(struct vctx *c, const char *const *keys)
{
    struct dw_buf b;
    char *s;

    dw_buf_init(&b);
    for (size_t i = 0; keys[i]; i++)
        dw_buf_printf(&b, "%s\"%s\"", i ? ", " : "", keys[i]);
    s = dw_buf_failed(&b) ? NULL : dw_arena_strdup(&c->ld->scratch, b.data ? b.data : "");
    dw_buf_cleanup(&b);
    return s ? s : "(out of memory)";
}

/* ---- small checks ---- */

struct name_ref {
    const char *name;
    size_t index;
};

static int cmp_name_ref(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    int r = strcmp(x->name, y->name);

    return r ? r : (x->index < y->index ? -1 : x->index > y->index);
}

/*
 * For n names stride bytes apart starting at names (so that a member of an
 * array of structs can be passed; NULL entries ignored) set first[i] to the
 * index of the first earlier equal name, or DW_MAP_NONE.  Sorting keeps this O(n log n)
 * for any file size.  Returns false when out of memory.
 */
static bool find_duplicates(const char *const *names, size_t stride, size_t n, size_t *first)
{
    struct name_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    size_t m = 0;

    if (!refs)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *name = *(const char *const *) ((const char *) names + i * stride);

        first[i] = DW_MAP_NONE;
        if (name) {
            refs[m].name = name;
            refs[m++].index = i;
        }
    }
    qsort(refs, m, sizeof(*refs), cmp_name_ref);
    for (size_t i = 1, head = 0; i < m; i++) {
        if (strcmp(refs[i].name, refs[head].name) == 0)
            first[refs[i].index] = refs[head].index;
        else
            head = i;
    }
    free(refs);
    return true;
}

static char *dup_str(struct vctx *c, const char *s)
{
    char *p = dw_arena_strdup(c->a, s);

    if (!p)
        oom(c);
    return p;
}

/* Unknown and duplicate keys of an object. */
static void check_keys(struct vctx *c, const cJSON *obj, const char *const *valid)
{
    bool seen[8] = {false};     /* the longest list of valid keys has 6 */

    for (const cJSON *k = obj->child; k; k = k->next) {
        size_t i;

        for (i = 0; valid[i]; i++)
            if (strcmp(valid[i], k->string) == 0)
                break;
        if (!valid[i])
            verr(c, "unknown key %s; valid keys are %s", q(c, k->string), key_list(c, valid));
        else if (seen[i])
            verr(c, "duplicate key %s", q(c, k->string));
        else
            seen[i] = true;
    }
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static const cJSON *get_required(struct vctx *c, const cJSON *obj, const char *key)
{
    const cJSON *j = get(obj, key);

    if (!j)
        verr(c, "missing required key \"%s\"", key);
    return j;
}

static bool want_object(struct vctx *c, const cJSON *j)
{
    if (cJSON_IsObject(j))
        return true;
    verr(c, "expected an object, found %s", jtype(j));
    return false;
}

static bool want_array(struct vctx *c, const cJSON *j)
{
    if (cJSON_IsArray(j))
        return true;
    verr(c, "expected an array, found %s", jtype(j));
    return false;
}

/*
 * A name (map, table, column, connector): a non-empty string without control
 * characters, at most maxlen bytes when maxlen > 0.
 */
static char *ident(struct vctx *c, const cJSON *j, const char *what, size_t maxlen)
{
    const char *s;

    if (!cJSON_IsString(j)) {
        verr(c, "expected a string, found %s", jtype(j));
        return NULL;
    }
    s = j->valuestring;
    if (*s == '\0') {
        verr(c, "%s must not be empty", what);
        return NULL;
    }
    for (const char *p = s; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            verr(c, "%s %s contains a control character", what, q(c, s));
            return NULL;
        }
    if (maxlen && strlen(s) > maxlen) {
        verr(c, "%s %s is longer than %zu bytes, the longest PostgreSQL name", what, q(c, s), maxlen);
        return NULL;
    }
    return dup_str(c, s);
}

/* A text value: a string, or null for SQL null.  *ok says which happened. */
static char *text_or_null(struct vctx *c, const cJSON *j, bool *ok)
{
    *ok = false;
    if (cJSON_IsNull(j)) {
        *ok = true;
        return NULL;
    }
    if (!cJSON_IsString(j)) {
        verr(c, "expected a string or null, found %s", jtype(j));
        return NULL;
    }
    *ok = true;
    return dup_str(c, j->valuestring);
}

/*
 * An array of distinct names.  *out gets one slot per element (NULL where an
 * element is invalid) so that indexes match the file.
 */
static void ident_list(struct vctx *c, const cJSON *j, const char *what, size_t maxlen,
                       bool nonempty, char ***out, size_t *n)
{
    size_t count, i = 0;
    char **v;

    *out = NULL;
    *n = 0;
    if (!want_array(c, j))
        return;
    count = (size_t) cJSON_GetArraySize(j);
    if (count == 0) {
        if (nonempty)
            verr(c, "expected at least one %s", what);
        return;
    }
    v = dw_arena_zalloc(c->a, count * sizeof(*v));
    if (!v) {
        oom(c);
        return;
    }
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        size_t old = push_index(c, i);

        v[i] = ident(c, e, what, maxlen);
        pop(c, old);
    }
    *out = v;
    *n = count;
    {
        size_t *first = malloc(count * sizeof(*first));

        if (!first || !find_duplicates((const char *const *) v, sizeof(*v), count, first)) {
            free(first);
            oom(c);
            return;
        }
        for (i = 0; i < count; i++)
            if (first[i] != DW_MAP_NONE) {
                size_t old = push_index(c, i);

                verr(c, "duplicate %s %s", what, q(c, v[i]));
                pop(c, old);
            }
        free(first);
    }
}

/* ---- sections ---- */

/* "table" or "schema.table"; unqualified names go to "public". */
static char *source_table(struct vctx *c, const cJSON *j)
{
    char *s = ident(c, j, "table name", 0);
    const char *dot;
    size_t schema_len, table_len;

    if (!s)
        return NULL;
    dot = strchr(s, '.');
    if (!dot) {
        if (strlen(s) > DW_MAP_PG_NAME_MAX) {
            verr(c, "table name %s is longer than %d bytes, the longest PostgreSQL name", q(c, s),
                 DW_MAP_PG_NAME_MAX);
            return NULL;
        }
        {
            size_t len = strlen(s);
            char *full = dw_arena_alloc(c->a, len + sizeof("public."));

            if (!full) {
                oom(c);
                return NULL;
            }
            memcpy(full, "public.", 7);
            memcpy(full + 7, s, len + 1);
            return full;
        }
    }
    schema_len = (size_t) (dot - s);
    table_len = strlen(dot + 1);
    if (strchr(dot + 1, '.') || schema_len == 0 || table_len == 0) {
        verr(c, "table name %s must be \"table\" or \"schema.table\"", q(c, s));
        return NULL;
    }
    if (schema_len > DW_MAP_PG_NAME_MAX || table_len > DW_MAP_PG_NAME_MAX) {
        verr(c, "table name %s has a part longer than %d bytes, the longest PostgreSQL name", q(c, s),
             DW_MAP_PG_NAME_MAX);
        return NULL;
    }
    return s;
}

static void parse_source(struct vctx *c, const cJSON *j, struct dw_map *m, size_t *nkey)
{
    const cJSON *t, *k;

    if (!want_object(c, j))
        return;
    check_keys(c, j, source_keys);
    t = get_required(c, j, "table");
    k = get_required(c, j, "key");
    if (t) {
        size_t old = push(c, "table");

        m->source_table = source_table(c, t);
        pop(c, old);
    }
    if (k) {
        size_t old = push(c, "key");

        ident_list(c, k, "column", DW_MAP_PG_NAME_MAX, true, &m->source_key, nkey);
        pop(c, old);
    }
}

static void parse_target(struct vctx *c, const cJSON *j, struct dw_map *m, size_t *nkey)
{
    const cJSON *conn, *t, *k;
    size_t old;

    if (!want_object(c, j))
        return;
    check_keys(c, j, target_keys);
    conn = get_required(c, j, "connector");
    t = get_required(c, j, "table");
    k = get_required(c, j, "key");
    if (conn) {
        old = push(c, "connector");
        m->connector = ident(c, conn, "connector name", 0);
        pop(c, old);
    }
    if (t) {
        old = push(c, "table");
        m->target_table = ident(c, t, "table name", 0);
        pop(c, old);
    }
    if (k) {
        old = push(c, "key");
        ident_list(c, k, "column", 0, true, &m->target_key, nkey);
        pop(c, old);
    }
}

static void parse_filter(struct vctx *c, const cJSON *j, struct dw_filter *f)
{
    const cJSON *col, *in;
    size_t old, count, i = 0;

    if (!want_object(c, j))
        return;
    check_keys(c, j, filter_keys);
    col = get_required(c, j, "column");
    in = get_required(c, j, "in");
    if (col) {
        old = push(c, "column");
        f->column = ident(c, col, "column name", DW_MAP_PG_NAME_MAX);
        pop(c, old);
    }
    if (!in)
        return;
    old = push(c, "in");
    if (!want_array(c, in)) {
        pop(c, old);
        return;
    }
    count = (size_t) cJSON_GetArraySize(in);
    if (count == 0) {
        verr(c, "expected at least one value");
        pop(c, old);
        return;
    }
    f->in = dw_arena_zalloc(c->a, count * sizeof(*f->in));
    if (!f->in) {
        oom(c);
        pop(c, old);
        return;
    }
    f->nin = count;
    for (const cJSON *e = in->child; e; e = e->next, i++) {
        size_t o2 = push_index(c, i);
        bool ok;

        f->in[i] = text_or_null(c, e, &ok);
        pop(c, o2);
    }
    pop(c, old);
}

static void parse_values(struct vctx *c, const cJSON *j, struct dw_field *f)
{
    size_t count, i = 0;
    size_t *first;

    if (!want_object(c, j))
        return;
    count = (size_t) cJSON_GetArraySize(j);
    if (count == 0) {
        verr(c, "expected at least one entry");
        return;
    }
    f->values = dw_arena_zalloc(c->a, count * sizeof(*f->values));
    if (!f->values) {
        oom(c);
        return;
    }
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        size_t old = push(c, e->string);
        bool ok;

        f->values[i].from = dup_str(c, e->string);
        f->values[i].to = text_or_null(c, e, &ok);
        pop(c, old);
        if (!f->values[i].from)
            return;
    }
    f->nvalues = count;
    f->has_values = true;
    /* cJSON keeps duplicate keys; a value map may be large, so find them by sorting */
    first = malloc(count * sizeof(*first));
    if (!first || !find_duplicates((const char *const *) &f->values[0].from, sizeof(*f->values), count,
                                   first)) {
        free(first);
        oom(c);
        return;
    }
    for (i = 0; i < count; i++)
        if (first[i] != DW_MAP_NONE)
            verr(c, "duplicate key %s", q(c, f->values[i].from));
    free(first);
}

/* One entry of a lookup's "key": "column", or {"source": "column", "type": "Edm.Int32"}. */
static void parse_lookup_key(struct vctx *c, const cJSON *j, struct dw_lookup_key *k)
{
    const cJSON *src, *type;
    size_t old;

    k->type = DW_LOOKUP_STRING;
    if (cJSON_IsString(j)) {
        k->source = ident(c, j, "column name", DW_MAP_PG_NAME_MAX);
        return;
    }
    if (!cJSON_IsObject(j)) {
        verr(c, "expected a string (a source column) or an object, found %s", jtype(j));
        return;
    }
    check_keys(c, j, lookup_key_keys);
    src = get_required(c, j, "source");
    if (src) {
        old = push(c, "source");
        k->source = ident(c, src, "column name", DW_MAP_PG_NAME_MAX);
        pop(c, old);
    }
    if ((type = get(j, "type"))) {
        size_t i, n = sizeof(lookup_types) / sizeof(lookup_types[0]);

        old = push(c, "type");
        if (!cJSON_IsString(type))
            verr(c, "expected a string, found %s", jtype(type));
        else {
            for (i = 0; i < n; i++)
                if (strcmp(type->valuestring, lookup_types[i].name) == 0)
                    break;
            if (i < n)
                k->type = lookup_types[i].type;
            else {
                struct dw_buf b;

                dw_buf_init(&b);
                for (i = 0; i < n; i++)
                    dw_buf_printf(&b, "%s\"%s\"", i ? ", " : "", lookup_types[i].name);
                verr(c, "unknown lookup key type %s; valid types are %s", q(c, type->valuestring),
                     dw_buf_failed(&b) || !b.data ? "(out of memory)" : b.data);
                dw_buf_cleanup(&b);
            }
        }
        pop(c, old);
    }
}

/* "lookup": {"entity_set": "Accounts", "key": {"account_no": "customer_no", ...}} */
static void parse_lookup(struct vctx *c, const cJSON *j, struct dw_field *f)
{
    const cJSON *set, *key;
    struct dw_lookup *lk;
    size_t old, count, i = 0;

    if (!want_object(c, j))
        return;
    check_keys(c, j, lookup_keys);
    set = get_required(c, j, "entity_set");
    key = get_required(c, j, "key");
    if (!(lk = dw_arena_zalloc(c->a, sizeof(*lk)))) {
        oom(c);
        return;
    }
    f->lookup = lk;     /* even when invalid: the key checks must know it is a lookup */
    if (set) {
        old = push(c, "entity_set");
        lk->entity_set = ident(c, set, "entity set name", 0);
        pop(c, old);
    }
    if (!key)
        return;
    old = push(c, "key");
    if (!want_object(c, key)) {
        pop(c, old);
        return;
    }
    count = (size_t) cJSON_GetArraySize(key);
    if (count == 0) {
        verr(c, "expected at least one key property");
        pop(c, old);
        return;
    }
    if (!(lk->keys = dw_arena_zalloc(c->a, count * sizeof(*lk->keys)))) {
        oom(c);
        pop(c, old);
        return;
    }
    for (const cJSON *e = key->child; e; e = e->next, i++) {
        size_t o2 = push(c, e->string);

        if (*e->string == '\0')
            verr(c, "key property name must not be empty");
        else {
            for (const char *p = e->string; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f) {
                    verr(c, "key property name %s contains a control character", q(c, e->string));
                    break;
                }
            lk->keys[i].property = dup_str(c, e->string);
        }
        parse_lookup_key(c, e, &lk->keys[i]);
        pop(c, o2);
    }
    /* cJSON keeps duplicate keys */
    lk->nkeys = count;
    {
        size_t *first = malloc(count * sizeof(*first));

        if (!first || !find_duplicates((const char *const *) &lk->keys[0].property, sizeof(*lk->keys),
                                       count, first)) {
            free(first);
            oom(c);
            pop(c, old);
            return;
        }
        for (i = 0; i < count; i++)
            if (first[i] != DW_MAP_NONE)
                verr(c, "duplicate key %s", q(c, lk->keys[i].property));
        free(first);
    }
    pop(c, old);
}

static void parse_field(struct vctx *c, const cJSON *j, struct dw_field *f)
{
    const cJSON *src, *tgt, *req, *val, *def, *cst, *lkp;
    bool ok;
    size_t old;

    if (!want_object(c, j))
        return;
    check_keys(c, j, field_keys);
    src = get(j, "source");
    tgt = get(j, "target");
    req = get(j, "required");
    val = get(j, "values");
    def = get(j, "default");
    cst = get(j, "const");
    lkp = get(j, "lookup");

    if (!tgt)
        verr(c, "missing required key \"target\"");
    if (lkp) {
        static const char *const excluded[] = {"source", "const", "values", "default"};

        for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++)
            if (get(j, excluded[i]))
                verr_at(c, excluded[i], "\"lookup\" cannot be combined with \"%s\"", excluded[i]);
    } else if (cst) {
        static const char *const excluded[] = {"source", "values", "default", "required"};

        for (size_t i = 0; i < sizeof(excluded) / sizeof(excluded[0]); i++)
            if (get(j, excluded[i]))
                verr_at(c, excluded[i], "\"const\" cannot be combined with \"%s\"", excluded[i]);
    } else if (!src)
        verr(c, "a field needs \"source\", \"const\" or \"lookup\"");
    if (def && !val && !lkp)
        verr_at(c, "default", "\"default\" requires \"values\"");

    if (tgt) {
        old = push(c, "target");
        f->target = ident(c, tgt, "column name", 0);
        pop(c, old);
    }
    if (src) {
        old = push(c, "source");
        f->source = ident(c, src, "column name", DW_MAP_PG_NAME_MAX);
        pop(c, old);
    }
    if (req) {
        old = push(c, "required");
        if (cJSON_IsBool(req))
            f->required = cJSON_IsTrue(req);
        else
            verr(c, "expected a boolean, found %s", jtype(req));
        pop(c, old);
    }
    if (cst) {
        old = push(c, "const");
        f->const_value = text_or_null(c, cst, &ok);
        f->has_const = ok;
        pop(c, old);
    }
    if (val) {
        old = push(c, "values");
        parse_values(c, val, f);
        pop(c, old);
    }
    if (def) {
        old = push(c, "default");
        f->default_value = text_or_null(c, def, &ok);
        f->has_default = ok;
        pop(c, old);
    }
    if (lkp) {
        old = push(c, "lookup");
        parse_lookup(c, lkp, f);
        pop(c, old);
    }
}

static void parse_fields(struct vctx *c, const cJSON *j, struct dw_map *m)
{
    size_t count, i = 0;

    if (!want_array(c, j))
        return;
    count = (size_t) cJSON_GetArraySize(j);
    if (count == 0) {
        verr(c, "expected at least one field");
        return;
    }
    m->fields = dw_arena_zalloc(c->a, count * sizeof(*m->fields));
    if (!m->fields) {
        oom(c);
        return;
    }
    m->nfields = count;
    for (const cJSON *e = j->child; e; e = e->next, i++) {
        size_t old = push_index(c, i);

        parse_field(c, e, &m->fields[i]);
        pop(c, old);
    }
}

/* Checks between sections: key arity, key mapping, duplicate target columns. */
static void check_map(struct vctx *c, struct dw_map *m, size_t nsrc, size_t ntgt, bool have_src,
                      bool have_tgt)
{
    size_t old, o2;

    /* duplicate target columns */
    if (m->nfields > 1) {
        size_t *first = malloc(m->nfields * sizeof(*first));

        if (!first || !find_duplicates((const char *const *) &m->fields[0].target, sizeof(*m->fields),
                                       m->nfields, first)) {
            free(first);
            oom(c);
            return;
        }
        for (size_t i = 0; i < m->nfields; i++)
            if (first[i] != DW_MAP_NONE) {
                old = push(c, "fields");
                o2 = push_index(c, i);
                verr_at(c, "target", "duplicate target column %s (also set by /fields/%zu)",
                        q(c, m->fields[i].target), first[i]);
                pop(c, o2);
                pop(c, old);
            }
        free(first);
    }

    /* without both keys and a field list there is nothing to compare */
    if (!have_src || !have_tgt || nsrc == 0 || ntgt == 0 || m->nfields == 0)
        return;
    if (nsrc != ntgt) {
        old = push(c, "target");
        verr_at(c, "key", "expected %zu column%s (as many as /source/key), found %zu", nsrc,
                nsrc == 1 ? "" : "s", ntgt);
        pop(c, old);
        return;
    }
    m->nkey = nsrc;
    m->key_field = dw_arena_alloc(c->a, nsrc * sizeof(*m->key_field));
    if (!m->key_field) {
        oom(c);
        return;
    }
    for (size_t i = 0; i < nsrc; i++) {
        const char *sk = m->source_key[i], *tk = m->target_key[i];
        size_t f = DW_MAP_NONE;

        m->key_field[i] = DW_MAP_NONE;
        if (!sk || !tk)
            continue;
        for (size_t k = 0; k < m->nfields; k++)
            if (m->fields[k].target && strcmp(m->fields[k].target, tk) == 0) {
                f = k;
                break;
            }
        if (f == DW_MAP_NONE) {
            old = push(c, "target");
            o2 = push(c, "key");
            {
                size_t o3 = push_index(c, i);

                verr(c, "no field maps source key column %s to target key column %s", q(c, sk),
                     q(c, tk));
                pop(c, o3);
            }
            pop(c, o2);
            pop(c, old);
            continue;
        }
        m->key_field[i] = f;
        old = push(c, "fields");
        o2 = push_index(c, f);
        {
            const struct dw_field *fd = &m->fields[f];

            if (fd->source && strcmp(fd->source, sk) != 0)
                verr_at(c, "source",
                        "target key column %s must be mapped from source key column %s at the same "
                        "position, found %s", q(c, tk), q(c, sk), q(c, fd->source));
            else if (!fd->source && fd->has_const)
                verr_at(c, "const", "target key column %s must be mapped from source key column %s, "
                        "not set by \"const\"", q(c, tk), q(c, sk));
            else if (!fd->source && fd->lookup)
                verr_at(c, "lookup", "target key column %s must be mapped from source key column %s, "
                        "not set by \"lookup\"", q(c, tk), q(c, sk));
            if (fd->has_values)
                verr_at(c, "values", "key field %s cannot have \"values\"", q(c, tk));
            if (fd->has_default)
                verr_at(c, "default", "key field %s cannot have \"default\"", q(c, tk));
        }
        pop(c, o2);
        pop(c, old);
    }
}

void dw_map_validate_file(struct dw_map_loader *ld, struct dw_map_file *file, const void *json)
{
    const cJSON *root = json, *j;
    struct vctx c = {.ld = ld, .file = file, .a = ld->arena};
    struct dw_map *m = &file->map;
    size_t nsrc = 0, ntgt = 0, old;
    const cJSON *src, *tgt;

    c.path[0] = '\0';
    if (!cJSON_IsObject(root)) {
        verr(&c, "expected an object (one table map), found %s", jtype(root));
        return;
    }
    file->has_map = true;
    check_keys(&c, root, top_keys);
    j = get_required(&c, root, "map");
    src = get_required(&c, root, "source");
    tgt = get_required(&c, root, "target");
    if (!get(root, "fields"))
        verr(&c, "missing required key \"fields\"");

    if (j) {
        old = push(&c, "map");
        m->name = ident(&c, j, "table map name", 0);
        pop(&c, old);
    }
    if (src) {
        old = push(&c, "source");
        parse_source(&c, src, m, &nsrc);
        pop(&c, old);
    }
    if (tgt) {
        old = push(&c, "target");
        parse_target(&c, tgt, m, &ntgt);
        pop(&c, old);
    }
    if ((j = get(root, "filter"))) {
        old = push(&c, "filter");
        parse_filter(&c, j, &m->filter);
        pop(&c, old);
    }
    if ((j = get(root, "fields"))) {
        old = push(&c, "fields");
        parse_fields(&c, j, m);
        pop(&c, old);
    }
    if ((j = get(root, "depends_on"))) {
        old = push(&c, "depends_on");
        ident_list(&c, j, "table map", 0, false, &m->depends_on, &m->ndepends);
        pop(&c, old);
    }
    check_map(&c, m, nsrc, ntgt, m->source_key != NULL, m->target_key != NULL);
}

