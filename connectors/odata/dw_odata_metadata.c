/*
 * Reading a service's CSDL document ($metadata) into struct
 * dw_odata_metadata: a small XML tokenizer and a walk that keeps Schema
 * (namespace and alias), EntityType (Key, Property, NavigationProperty,
 * BaseType), TypeDefinition, EnumType, EntitySet and the AlternateKeys
 * annotation (inline in an EntityType or in Annotations Target="..."), which
 * is how Dataverse declares alternate keys.  Everything else is skipped.
 *
 * The tokenizer is strict where being lax could mislead us (unbalanced tags,
 * unknown entities, broken attribute syntax are errors) and refuses DTDs, so
 * no entity can expand.  Resolution happens after the walk, because a
 * container may name types declared later and types may inherit across
 * schemas.
 */
#include "connectors/odata/dw_odata_metadata.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_utf8.h"

#define MAX_DEPTH 128
#define MAX_ATTRS 64
#define MAX_BASE_CHAIN 32

/* ---------------------------------------------------------------- tokenizer */

struct xml_attr {
    const char *name;      /* local name (after any prefix) */
    size_t nlen;
    const char *val;       /* raw: entities not yet decoded */
    size_t vlen;
};

struct xml_tag {
    bool closing;          /* </name> */
    bool empty;            /* <name/> */
    const char *name;      /* local name */
    size_t nlen;
    size_t nattrs;
    struct xml_attr attrs[MAX_ATTRS];
};

struct xml {
    const char *start, *p, *end;
};

static bool name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static dw_errcode xml_error(const struct xml *x, const char *what, struct dw_error *err)
{
    return dw_error_set(err, DW_ERR_PROTOCOL, "$metadata is not well-formed XML: %s at byte %zu",
                        what, (size_t) (x->p - x->start));
}

static bool skip_past(struct xml *x, const char *marker)
{
    size_t m = strlen(marker);

    for (const char *q = x->p; q + m <= x->end; q++) {
        if (memcmp(q, marker, m) == 0) {
            x->p = q + m;
            return true;
        }
    }
    return false;
}

/* A name; returns its local part (after the last ':'). */
static bool read_name(struct xml *x, const char **name, size_t *nlen)
{
    const char *s = x->p, *local;

    if (x->p >= x->end || !name_start((unsigned char) *x->p))
        return false;
    while (x->p < x->end && name_char((unsigned char) *x->p))
        x->p++;
    local = s;
    for (const char *q = s; q < x->p; q++)
        if (*q == ':')
            local = q + 1;
    *name = local;
    *nlen = (size_t) (x->p - local);
    return *nlen > 0;
}

static void skip_space(struct xml *x)
{
    while (x->p < x->end && is_space(*x->p))
        x->p++;
}

/* The next tag: 1, or 0 at the end of the input, or -1 (err set). */
static int next_tag(struct xml *x, struct xml_tag *t, struct dw_error *err)
{
    for (;;) {
        const char *lt = memchr(x->p, '<', (size_t) (x->end - x->p));

        if (!lt) {
            x->p = x->end;
            return 0;
        }
        x->p = lt;
        if (x->end - x->p >= 4 && memcmp(x->p, "<!--", 4) == 0) {
            if (!skip_past(x, "-->"))
                return xml_error(x, "unterminated comment", err), -1;
            continue;
        }
        if (x->end - x->p >= 9 && memcmp(x->p, "<![CDATA[", 9) == 0) {
            if (!skip_past(x, "]]>"))
                return xml_error(x, "unterminated CDATA section", err), -1;
            continue;
        }
        if (x->end - x->p >= 2 && x->p[1] == '!')
            return xml_error(x, "a document type declaration is not accepted", err), -1;
        if (x->end - x->p >= 2 && x->p[1] == '?') {
            if (!skip_past(x, "?>"))
                return xml_error(x, "unterminated processing instruction", err), -1;
            continue;
        }
        break;
    }
    x->p++;
    memset(t, 0, offsetof(struct xml_tag, attrs));
    if (x->p < x->end && *x->p == '/') {
        t->closing = true;
        x->p++;
    }
    if (!read_name(x, &t->name, &t->nlen))
        return xml_error(x, "expected an element name", err), -1;
    for (;;) {
        struct xml_attr *a;
        char q;
        const char *v;

        skip_space(x);
        if (x->p >= x->end)
            return xml_error(x, "unterminated tag", err), -1;
        if (*x->p == '>') {
            x->p++;
            return 1;
        }
        if (*x->p == '/' && !t->closing && x->end - x->p >= 2 && x->p[1] == '>') {
            t->empty = true;
            x->p += 2;
            return 1;
        }
        if (t->closing)
            return xml_error(x, "unexpected content in an end tag", err), -1;
        if (t->nattrs == MAX_ATTRS)
            return xml_error(x, "too many attributes", err), -1;
        a = &t->attrs[t->nattrs];
        if (!read_name(x, &a->name, &a->nlen))
            return xml_error(x, "expected an attribute name", err), -1;
        skip_space(x);
        if (x->p >= x->end || *x->p != '=')
            return xml_error(x, "expected '=' after an attribute name", err), -1;
        x->p++;
        skip_space(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
            return xml_error(x, "expected a quoted attribute value", err), -1;
        q = *x->p++;
        v = x->p;
        while (x->p < x->end && *x->p != q) {
            if (*x->p == '<')
                return xml_error(x, "'<' in an attribute value", err), -1;
            x->p++;
        }
        if (x->p >= x->end)
            return xml_error(x, "unterminated attribute value", err), -1;
        a->val = v;
        a->vlen = (size_t) (x->p - v);
        x->p++;
        t->nattrs++;
    }
}

static bool tag_is(const struct xml_tag *t, const char *name)
{
    return t->nlen == strlen(name) && memcmp(t->name, name, t->nlen) == 0;
}

static const struct xml_attr *tag_attr(const struct xml_tag *t, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < t->nattrs; i++)
        if (t->attrs[i].nlen == n && memcmp(t->attrs[i].name, name, n) == 0)
            return &t->attrs[i];
    return NULL;
}

/* One "&...;" reference at v (up to semi) as UTF-8 into out; returns its length, 0 if invalid. */
static size_t decode_ref(const char *v, const char *semi, char out[4])
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
    const char *d = v + 1;
    size_t n = (size_t) (semi - d);
    unsigned long cp = 0;
    bool hex;

    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        if (n == strlen(named[k].name) && memcmp(d, named[k].name, n) == 0) {
            out[0] = named[k].c;
            return 1;
        }
    }
    if (n < 2 || *d != '#')
        return 0;
    d++;
    hex = *d == 'x';
    if (hex)
        d++;
    if (d == semi)
        return 0;
    for (; d < semi; d++) {
        int digit;

        if (*d >= '0' && *d <= '9')
            digit = *d - '0';
        else if (hex && *d >= 'a' && *d <= 'f')
            digit = *d - 'a' + 10;
        else if (hex && *d >= 'A' && *d <= 'F')
            digit = *d - 'A' + 10;
        else
            return 0;
        cp = cp * (hex ? 16 : 10) + (unsigned long) digit;
        if (cp > 0x10FFFF)
            return 0;
    }
    return cp == 0 ? 0 : dw_utf8_encode((uint32_t) cp, out);
}

/*
 * Decode the references of an attribute value into the arena (never longer:
 * a reference is at least 4 bytes, its character at most 4).  NULL with *bad
 * for an unknown or malformed reference, NULL alone when out of memory.
 */
static char *decode_value(struct dw_arena *arena, const char *v, size_t n, bool *bad)
{
    char *out = dw_arena_alloc(arena, n + 1);
    size_t o = 0;

    *bad = false;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        const char *semi;
        size_t len;

        if (v[i] != '&') {
            out[o++] = v[i++];
            continue;
        }
        semi = memchr(v + i, ';', n - i);
        if (!semi || (len = decode_ref(v + i, semi, out + o)) == 0) {
            *bad = true;
            return NULL;
        }
        o += len;
        i = (size_t) (semi + 1 - v);
    }
    out[o] = '\0';
    return out;
}

/* ---------------------------------------------------------------- raw model */

struct vec {
    void *items;
    size_t n, cap;
};

static void *vec_push(struct vec *v, size_t size)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void *p = realloc(v->items, cap * size);

        if (!p)
            return NULL;
        v->items = p;
        v->cap = cap;
    }
    return memset((char *) v->items + v->n++ * size, 0, size);
}

static void vec_free(struct vec *v)
{
    free(v->items);
    v->items = NULL;
    v->n = v->cap = 0;
}

struct raw_prop {
    const char *name;
    const char *type;
};

struct raw_type {
    const char *qname;     /* Namespace.Name */
    const char *base;      /* as written, or NULL */
    bool has_key;
    struct vec keys;       /* const char * */
    struct vec props;      /* struct raw_prop */
    struct vec navs;       /* const char * */
};

struct raw_set {
    const char *name;
    const char *type;      /* as written */
};

struct raw_alias {
    const char *ns, *alias;
};

struct raw_simple {        /* TypeDefinition or EnumType */
    const char *qname;
    const char *underlying;  /* TypeDefinition; NULL for an enum */
};

struct raw_alt {
    const char *target;    /* as written */
    struct vec names;      /* const char * */
};

struct scan {
    struct dw_arena *arena;
    struct vec types, sets, aliases, simples, alts;
    /* walk state */
    const char *ns, *alias;
    long type;             /* index into types of the EntityType being read, or -1 */
    bool in_key;
    int skip_depth;        /* inside a ComplexType (its properties are not ours), or 0 */
    const char *ann_target;  /* Target of the enclosing <Annotations>, or NULL */
    int alt_depth;         /* depth of an AlternateKeys <Annotation>, or 0 */
    const char *alt_target;
    long alt;              /* index into alts of the key being read, or -1 */
};

static dw_errcode nomem(struct dw_error *err)
{
    return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
}

static const char *attr_str(struct scan *s, const struct xml *x, const struct xml_tag *t,
                            const char *name, dw_errcode *rc, struct dw_error *err)
{
    const struct xml_attr *a = tag_attr(t, name);
    bool bad;
    char *v;

    if (!a)
        return NULL;
    v = decode_value(s->arena, a->val, a->vlen, &bad);
    if (!v) {
        *rc = bad ? xml_error(x, "invalid entity reference in an attribute value", err)
                  : nomem(err);
        return NULL;
    }
    return v;
}

static const char *qualify(struct scan *s, const char *ns, const char *name)
{
    char *q;
    size_t a = strlen(ns), b = strlen(name);

    q = dw_arena_alloc(s->arena, a + b + 2);
    if (!q)
        return NULL;
    memcpy(q, ns, a);
    q[a] = '.';
    memcpy(q + a + 1, name, b + 1);
    return q;
}

static bool push_str(struct vec *v, const char *str)
{
    const char **slot = vec_push(v, sizeof(const char *));

    if (!slot)
        return false;
    *slot = str;
    return true;
}

/* Term="...AlternateKeys" in any vocabulary namespace or alias */
static bool is_altkeys_term(const char *term)
{
    const char *dot = term ? strrchr(term, '.') : NULL;

    return dot && strcmp(dot + 1, "AlternateKeys") == 0;
}

/* One start tag; depth is its depth in the element stack (1 = root). */
static dw_errcode on_start(struct scan *s, const struct xml *x, const struct xml_tag *t, int depth,
                           struct dw_error *err)
{
    dw_errcode rc = DW_OK;
    const char *name;

    if (s->skip_depth)
        return DW_OK;
    if (s->alt_depth) {
        /* inside an AlternateKeys annotation: Collection > Record(AlternateKey) > ... */
        if (tag_is(t, "Record") && depth == s->alt_depth + 2) {
            struct raw_alt *alt = vec_push(&s->alts, sizeof(*alt));

            if (!alt)
                return nomem(err);
            alt->target = s->alt_target;
            s->alt = (long) s->alts.n - 1;
        } else if (tag_is(t, "PropertyValue") && s->alt >= 0) {
            const char *prop = attr_str(s, x, t, "Property", &rc, err);
            const char *path = prop && strcmp(prop, "Name") == 0
                                   ? attr_str(s, x, t, "PropertyPath", &rc, err) : NULL;

            if (rc != DW_OK)
                return rc;
            if (path && !push_str(&((struct raw_alt *) s->alts.items)[s->alt].names, path))
                return nomem(err);
        }
        return DW_OK;
    }
    if (tag_is(t, "Schema")) {
        s->ns = attr_str(s, x, t, "Namespace", &rc, err);
        s->alias = attr_str(s, x, t, "Alias", &rc, err);
        if (rc != DW_OK)
            return rc;
        if (!s->ns)
            return xml_error(x, "a Schema without a Namespace", err);
        if (s->alias) {
            struct raw_alias *a = vec_push(&s->aliases, sizeof(*a));

            if (!a)
                return nomem(err);
            a->ns = s->ns;
            a->alias = s->alias;
        }
        return DW_OK;
    }
    if (!s->ns)
        return DW_OK;   /* Reference/Include and the like */
    if (tag_is(t, "ComplexType") && !t->empty) {
        s->skip_depth = depth;
        return DW_OK;
    }
    if (tag_is(t, "EntityType")) {
        struct raw_type *ty;

        name = attr_str(s, x, t, "Name", &rc, err);
        if (rc != DW_OK)
            return rc;
        if (!name)
            return xml_error(x, "an EntityType without a Name", err);
        ty = vec_push(&s->types, sizeof(*ty));
        if (!ty || !(ty->qname = qualify(s, s->ns, name)))
            return nomem(err);
        ty->base = attr_str(s, x, t, "BaseType", &rc, err);
        s->type = t->empty ? -1 : (long) s->types.n - 1;
        return rc;
    }
    if (tag_is(t, "TypeDefinition") || tag_is(t, "EnumType")) {
        struct raw_simple *sim;

        name = attr_str(s, x, t, "Name", &rc, err);
        if (rc != DW_OK || !name)
            return rc;
        sim = vec_push(&s->simples, sizeof(*sim));
        if (!sim || !(sim->qname = qualify(s, s->ns, name)))
            return nomem(err);
        if (tag_is(t, "TypeDefinition")) {
            sim->underlying = attr_str(s, x, t, "UnderlyingType", &rc, err);
            if (rc == DW_OK && !sim->underlying)
                sim->underlying = "Edm.String";
        }
        if (tag_is(t, "EnumType") && !t->empty)
            s->skip_depth = depth;   /* its Members are not ours */
        return rc;
    }
    if (tag_is(t, "EntitySet")) {
        struct raw_set *set;

        set = vec_push(&s->sets, sizeof(*set));
        if (!set)
            return nomem(err);
        set->name = attr_str(s, x, t, "Name", &rc, err);
        set->type = attr_str(s, x, t, "EntityType", &rc, err);
        if (rc == DW_OK && (!set->name || !set->type))
            return xml_error(x, "an EntitySet without a Name or an EntityType", err);
        return rc;
    }
    if (tag_is(t, "Annotations")) {
        s->ann_target = attr_str(s, x, t, "Target", &rc, err);
        return rc;
    }
    if (tag_is(t, "Annotation") && !t->empty) {
        const char *term = attr_str(s, x, t, "Term", &rc, err);
        const char *target = NULL;

        if (rc != DW_OK || !is_altkeys_term(term))
            return rc;
        if (s->type >= 0)
            target = ((struct raw_type *) s->types.items)[s->type].qname;
        else if (s->ann_target)
            target = s->ann_target;
        if (target) {
            s->alt_depth = depth;
            s->alt_target = target;
            s->alt = -1;
        }
        return DW_OK;
    }
    if (s->type < 0)
        return DW_OK;
    {
        struct raw_type *ty = &((struct raw_type *) s->types.items)[s->type];

        if (tag_is(t, "Key")) {
            ty->has_key = true;
            s->in_key = !t->empty;
        } else if (tag_is(t, "PropertyRef") && s->in_key) {
            name = attr_str(s, x, t, "Name", &rc, err);
            if (rc == DW_OK && !name)
                return xml_error(x, "a PropertyRef without a Name", err);
            if (rc == DW_OK && !push_str(&ty->keys, name))
                return nomem(err);
        } else if (tag_is(t, "Property")) {
            struct raw_prop *p = vec_push(&ty->props, sizeof(*p));

            if (!p)
                return nomem(err);
            p->name = attr_str(s, x, t, "Name", &rc, err);
            p->type = attr_str(s, x, t, "Type", &rc, err);
            if (rc == DW_OK && (!p->name || !p->type))
                return xml_error(x, "a Property without a Name or a Type", err);
        } else if (tag_is(t, "NavigationProperty")) {
            name = attr_str(s, x, t, "Name", &rc, err);
            if (rc == DW_OK && name && !push_str(&ty->navs, name))
                return nomem(err);
        }
    }
    return rc;
}

static void on_end(struct scan *s, const struct xml_tag *t, int depth)
{
    if (s->skip_depth) {
        if (depth == s->skip_depth)
            s->skip_depth = 0;
        return;
    }
    if (s->alt_depth) {
        if (depth == s->alt_depth)
            s->alt_depth = 0;
        return;
    }
    if (tag_is(t, "Schema"))
        s->ns = s->alias = NULL;
    else if (tag_is(t, "EntityType"))
        s->type = -1;
    else if (tag_is(t, "Key"))
        s->in_key = false;
    else if (tag_is(t, "Annotations"))
        s->ann_target = NULL;
}

static dw_errcode walk(struct scan *s, const char *xml, size_t len, struct dw_error *err)
{
    struct xml x = {xml, xml, xml + len};
    struct {
        const char *name;
        size_t nlen;
    } stack[MAX_DEPTH];
    int depth = 0;
    bool seen_root = false;
    struct xml_tag *t = malloc(sizeof(*t));
    dw_errcode rc = DW_OK;

    if (!t)
        return nomem(err);
    for (;;) {
        int got = next_tag(&x, t, err);

        if (got < 0) {
            rc = DW_ERR_PROTOCOL;
            break;
        }
        if (got == 0) {
            if (depth > 0 || !seen_root)
                rc = xml_error(&x, depth ? "the document ends inside an element"
                                         : "no root element", err);
            break;
        }
        if (t->closing) {
            if (depth == 0 || stack[depth - 1].nlen != t->nlen ||
                memcmp(stack[depth - 1].name, t->name, t->nlen) != 0) {
                rc = xml_error(&x, "mismatched end tag", err);
                break;
            }
            on_end(s, t, depth);
            depth--;
            continue;
        }
        if (depth == 0 && seen_root) {
            rc = xml_error(&x, "more than one root element", err);
            break;
        }
        if (depth == MAX_DEPTH) {
            rc = xml_error(&x, "elements nested too deeply", err);
            break;
        }
        seen_root = true;
        stack[depth].name = t->name;
        stack[depth].nlen = t->nlen;
        depth++;
        rc = on_start(s, &x, t, depth, err);
        if (rc != DW_OK)
            break;
        if (t->empty) {
            on_end(s, t, depth);
            depth--;
        }
    }
    free(t);
    return rc;
}

/* ---------------------------------------------------------------- resolution */

/* "Alias.Name" -> "Namespace.Name"; other names as they are. */
static const char *resolve_alias(struct scan *s, const char *ref)
{
    const char *dot = strrchr(ref, '.');

    if (!dot)
        return ref;
    for (size_t i = 0; i < s->aliases.n; i++) {
        const struct raw_alias *a = &((struct raw_alias *) s->aliases.items)[i];
        size_t n = strlen(a->alias);

        if ((size_t) (dot - ref) == n && memcmp(ref, a->alias, n) == 0)
            return qualify(s, a->ns, dot + 1);
    }
    return ref;
}

static int cmp_type(const void *a, const void *b)
{
    return strcmp(((const struct raw_type *) a)->qname, ((const struct raw_type *) b)->qname);
}

static struct raw_type *find_type(struct scan *s, const char *qname)
{
    struct raw_type key = {.qname = qname};

    if (!qname || s->types.n == 0)
        return NULL;
    return bsearch(&key, s->types.items, s->types.n, sizeof(struct raw_type), cmp_type);
}

static void int_kind(struct dw_odata_property *p, int64_t min, int64_t max)
{
    p->kind = DW_ODATA_INT;
    p->min = min;
    p->max = max;
}

static void set_kind(struct scan *s, struct dw_odata_property *p, const char *type, int hops)
{
    static const struct {
        const char *name;
        dw_odata_kind kind;
    } simple[] = {
        {"Edm.String", DW_ODATA_STRING}, {"Edm.Decimal", DW_ODATA_DECIMAL},
        {"Edm.Double", DW_ODATA_DOUBLE}, {"Edm.Single", DW_ODATA_DOUBLE},
        {"Edm.Boolean", DW_ODATA_BOOLEAN}, {"Edm.Date", DW_ODATA_DATE},
        {"Edm.DateTimeOffset", DW_ODATA_DATETIMEOFFSET}, {"Edm.TimeOfDay", DW_ODATA_TIMEOFDAY},
        {"Edm.Guid", DW_ODATA_GUID}, {"Edm.Binary", DW_ODATA_BINARY},
        {"Edm.Duration", DW_ODATA_DURATION},
    };
    const char *q;

    p->kind = DW_ODATA_OTHER;
    if (strcmp(type, "Edm.Byte") == 0)
        return int_kind(p, 0, 255);
    if (strcmp(type, "Edm.SByte") == 0)
        return int_kind(p, -128, 127);
    if (strcmp(type, "Edm.Int16") == 0)
        return int_kind(p, INT16_MIN, INT16_MAX);
    if (strcmp(type, "Edm.Int32") == 0)
        return int_kind(p, INT32_MIN, INT32_MAX);
    if (strcmp(type, "Edm.Int64") == 0)
        return int_kind(p, INT64_MIN, INT64_MAX);
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcmp(type, simple[i].name) == 0) {
            p->kind = simple[i].kind;
            return;
        }
    }
    if (hops > 4 || !(q = resolve_alias(s, type)))
        return;
    for (size_t i = 0; i < s->simples.n; i++) {
        const struct raw_simple *sim = &((struct raw_simple *) s->simples.items)[i];

        if (strcmp(sim->qname, q) == 0) {
            if (!sim->underlying)
                p->kind = DW_ODATA_ENUM;
            else
                set_kind(s, p, sim->underlying, hops + 1);
            return;
        }
    }
}

static int cmp_prop(const void *a, const void *b)
{
    return strcmp(((const struct dw_odata_property *) a)->name,
                  ((const struct dw_odata_property *) b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int cmp_set(const void *a, const void *b)
{
    return strcmp(((const struct dw_odata_set *) a)->name, ((const struct dw_odata_set *) b)->name);
}

static dw_errcode build_set(struct scan *s, const struct raw_set *rs, struct dw_odata_set *set,
                            struct dw_error *err)
{
    struct raw_type *chain[MAX_BASE_CHAIN];
    size_t nchain = 0, nprops = 0, nnavs = 0, nalts = 0, np = 0;
    struct raw_type *keyed = NULL;
    struct dw_odata_property *props;
    const struct dw_odata_property **key;
    const char **navs;
    struct dw_odata_altkey *alts;
    const char *q = resolve_alias(s, rs->type);

    if (!q)
        return nomem(err);
    for (struct raw_type *t = find_type(s, q); t; t = t->base ? find_type(s, resolve_alias(s, t->base)) : NULL) {
        if (nchain == MAX_BASE_CHAIN)
            return dw_error_set(err, DW_ERR_PROTOCOL, "$metadata: the base types of \"%s\" form a "
                                "cycle or a chain longer than %d", q, MAX_BASE_CHAIN);
        chain[nchain++] = t;
        nprops += t->props.n;
        nnavs += t->navs.n;
        if (!keyed && t->has_key)
            keyed = t;
    }
    if (nchain == 0)
        return dw_error_set(err, DW_ERR_PROTOCOL, "$metadata: entity set \"%s\" has the unknown "
                            "entity type \"%s\"", rs->name, rs->type);
    for (size_t i = 0; i < s->alts.n; i++) {
        const struct raw_alt *a = &((struct raw_alt *) s->alts.items)[i];
        const char *target = resolve_alias(s, a->target);

        for (size_t c = 0; c < nchain && target; c++)
            if (strcmp(target, chain[c]->qname) == 0 && a->names.n > 0)
                nalts++;
    }
    set->name = rs->name;
    set->type = chain[0]->qname;
    props = dw_arena_zalloc(s->arena, (nprops ? nprops : 1) * sizeof(*props));
    navs = dw_arena_zalloc(s->arena, (nnavs ? nnavs : 1) * sizeof(*navs));
    alts = dw_arena_zalloc(s->arena, (nalts ? nalts : 1) * sizeof(*alts));
    if (!props || !navs || !alts)
        return nomem(err);
    /* base types first, as the service lists them; a name declared twice keeps the first */
    for (size_t c = nchain; c-- > 0;) {
        for (size_t i = 0; i < chain[c]->props.n; i++) {
            const struct raw_prop *rp = &((struct raw_prop *) chain[c]->props.items)[i];
            bool dup = false;

            for (size_t k = 0; k < np && !dup; k++)
                dup = strcmp(props[k].name, rp->name) == 0;
            if (dup)
                continue;
            props[np].name = rp->name;
            props[np].type = rp->type;
            set_kind(s, &props[np], rp->type, 0);
            np++;
        }
        for (size_t i = 0; i < chain[c]->navs.n; i++)
            navs[set->nnavs++] = ((const char **) chain[c]->navs.items)[i];
    }
    qsort(props, np, sizeof(*props), cmp_prop);
    qsort(navs, set->nnavs, sizeof(*navs), cmp_str);
    set->props = props;
    set->nprops = np;
    set->navs = navs;
    if (keyed) {
        key = dw_arena_zalloc(s->arena, (keyed->keys.n ? keyed->keys.n : 1) * sizeof(*key));
        if (!key)
            return nomem(err);
        for (size_t i = 0; i < keyed->keys.n; i++) {
            const char *kn = ((const char **) keyed->keys.items)[i];

            key[i] = dw_odata_set_property(set, kn);
            if (!key[i])
                return dw_error_set(err, DW_ERR_PROTOCOL, "$metadata: the key of entity type "
                                    "\"%s\" names \"%s\", which is not one of its properties",
                                    keyed->qname, kn);
        }
        set->key = key;
        set->nkey = keyed->keys.n;
    }
    for (size_t i = 0; i < s->alts.n; i++) {
        const struct raw_alt *a = &((struct raw_alt *) s->alts.items)[i];
        const char *target = resolve_alias(s, a->target);

        for (size_t c = 0; c < nchain && target; c++) {
            if (strcmp(target, chain[c]->qname) != 0 || a->names.n == 0)
                continue;
            alts[set->naltkeys].n = a->names.n;
            alts[set->naltkeys].names = dw_arena_alloc(s->arena, a->names.n * sizeof(char *));
            if (!alts[set->naltkeys].names)
                return nomem(err);
            memcpy((void *) alts[set->naltkeys].names, a->names.items, a->names.n * sizeof(char *));
            set->naltkeys++;
        }
    }
    set->altkeys = alts;
    return DW_OK;
}

static void scan_cleanup(struct scan *s)
{
    for (size_t i = 0; i < s->types.n; i++) {
        struct raw_type *t = &((struct raw_type *) s->types.items)[i];

        vec_free(&t->keys);
        vec_free(&t->props);
        vec_free(&t->navs);
    }
    for (size_t i = 0; i < s->alts.n; i++)
        vec_free(&((struct raw_alt *) s->alts.items)[i].names);
    vec_free(&s->types);
    vec_free(&s->sets);
    vec_free(&s->aliases);
    vec_free(&s->simples);
    vec_free(&s->alts);
}

dw_errcode dw_odata_metadata_parse(const char *xml, size_t len, struct dw_odata_metadata **out,
                                   struct dw_error *err)
{
    struct dw_odata_metadata *m = calloc(1, sizeof(*m));
    struct dw_odata_set *sets = NULL;
    struct scan s;
    dw_errcode rc;

    *out = NULL;
    if (!m)
        return nomem(err);
    dw_arena_init(&m->arena, 64 * 1024);
    memset(&s, 0, sizeof(s));
    s.arena = &m->arena;
    s.type = -1;
    s.alt = -1;
    rc = walk(&s, xml, len, err);
    if (rc != DW_OK)
        goto fail;
    if (s.types.n)
        qsort(s.types.items, s.types.n, sizeof(struct raw_type), cmp_type);
    sets = dw_arena_zalloc(&m->arena, (s.sets.n ? s.sets.n : 1) * sizeof(*sets));
    if (!sets) {
        rc = nomem(err);
        goto fail;
    }
    for (size_t i = 0; i < s.sets.n; i++) {
        rc = build_set(&s, &((struct raw_set *) s.sets.items)[i], &sets[i], err);
        if (rc != DW_OK)
            goto fail;
    }
    qsort(sets, s.sets.n, sizeof(*sets), cmp_set);
    for (size_t i = 1; i < s.sets.n; i++) {
        if (strcmp(sets[i - 1].name, sets[i].name) == 0) {
            rc = dw_error_set(err, DW_ERR_PROTOCOL, "$metadata: entity set \"%s\" is declared "
                              "twice", sets[i].name);
            goto fail;
        }
    }
    m->sets = sets;
    m->nsets = s.sets.n;
    scan_cleanup(&s);
    *out = m;
    return DW_OK;
fail:
    scan_cleanup(&s);
    dw_odata_metadata_free(m);
    return rc;
}

void dw_odata_metadata_free(struct dw_odata_metadata *m)
{
    if (!m)
        return;
    dw_arena_cleanup(&m->arena);
    free(m);
}

const struct dw_odata_set *dw_odata_metadata_set(const struct dw_odata_metadata *m,
                                                 const char *name)
{
    struct dw_odata_set key = {.name = name};

    if (!m || !name || m->nsets == 0)
        return NULL;
    return bsearch(&key, m->sets, m->nsets, sizeof(*m->sets), cmp_set);
}

const struct dw_odata_property *dw_odata_set_property(const struct dw_odata_set *set,
                                                      const char *name)
{
    struct dw_odata_property key = {.name = name};

    if (!set || !name || set->nprops == 0)
        return NULL;
    return bsearch(&key, set->props, set->nprops, sizeof(*set->props), cmp_prop);
}

bool dw_odata_set_has_nav(const struct dw_odata_set *set, const char *name)
{
    if (!set || !name || set->nnavs == 0)
        return false;
    return bsearch(&name, set->navs, set->nnavs, sizeof(*set->navs), cmp_str) != NULL;
}

const char *dw_odata_kind_name(dw_odata_kind kind)
{
    switch (kind) {
    case DW_ODATA_STRING: return "Edm.String";
    case DW_ODATA_INT: return "an integer type";
    case DW_ODATA_DECIMAL: return "Edm.Decimal";
    case DW_ODATA_DOUBLE: return "Edm.Double";
    case DW_ODATA_BOOLEAN: return "Edm.Boolean";
    case DW_ODATA_DATE: return "Edm.Date";
    case DW_ODATA_DATETIMEOFFSET: return "Edm.DateTimeOffset";
    case DW_ODATA_TIMEOFDAY: return "Edm.TimeOfDay";
    case DW_ODATA_GUID: return "Edm.Guid";
    case DW_ODATA_BINARY: return "Edm.Binary";
    case DW_ODATA_DURATION: return "Edm.Duration";
    case DW_ODATA_ENUM: return "an enumeration type";
    case DW_ODATA_OTHER: return "an unsupported type";
    }
    return "?";
}
