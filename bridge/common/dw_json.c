/*
 * The strict JSON parser behind dw_json.h.
 *
 * One pass, no recursion: an explicit stack of open containers (frames) and a
 * scratch stack of finished children.  When a container closes, its children
 * are copied once into an exactly sized arena array and popped, so building
 * the tree is linear in the input and never mallocs per node; the two scratch
 * stacks are the only heap memory and are freed before returning.
 *
 * Strings take two passes over their own bytes: the first finds the closing
 * quote and validates UTF-8 and control characters (eight bytes at a time
 * while the text is plain ASCII), the second copies them (memcpy when there is
 * no escape).  The unescaped text is never longer than the raw text, which is
 * what lets the first pass size the arena allocation.
 *
 * Duplicate member names are detected when an object closes: pairwise for
 * small objects, by sorting for large ones, so a hostile object with many
 * members costs O(n log n) and cannot be made quadratic.
 */
#include "bridge/common/dw_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_utf8.h"

/* A finished child waiting for its container to close. */
struct entry {
    struct dw_json_member m;   /* m.name is NULL for array items */
    size_t key_offset;         /* where the member name starts, for messages */
};

/* An open object or array. */
struct frame {
    bool object;
    size_t offset;       /* of the '{' or '[' */
    size_t base;         /* index of its first child in the scratch stack */
    const char *key;     /* object: name of the member being parsed, or NULL */
    size_t key_len;
    size_t key_offset;
};

struct parser {
    const char *start;
    const char *p;
    const char *end;
    struct dw_arena *arena;
    struct dw_error *err;
    unsigned max_depth;
    unsigned depth;
    unsigned frames_cap;
    struct frame *frames;
    struct entry *stack;
    size_t top;
    size_t cap;
    const struct entry **sorted;   /* duplicate detection in large objects */
    size_t sorted_cap;
};

/* Objects with more members than this are checked for duplicates by sorting. */
#define PAIRWISE_MAX 16

/* Longest piece of a key or value quoted in a message. */
#define MESSAGE_TEXT_MAX 48

/* ---- messages ---- */

/*
 * Append s[0..len) to buf at *pos, one line of valid UTF-8, at most max bytes
 * of it; escapes the JSON Pointer specials when pointer is set, and the quote
 * and backslash when quoting.
 */
static void put_safe(char *buf, size_t size, size_t *pos, const char *s, size_t len, size_t max,
                     bool pointer)
{
    size_t written = 0, i = 0;
    /* room for "..." and the NUL */
    size_t limit = size > *pos + 4 ? size - *pos - 4 : 0;

    if (limit > max)
        limit = max;
    while (i < len) {
        unsigned char c = (unsigned char) s[i];
        char tmp[4];
        const char *out = tmp;
        size_t n = 1, adv = 1;

        if (c >= 0x80) {
            uint32_t cp;

            if (dw_utf8_decode(s + i, len - i, &cp, &adv) == DW_UTF8_OK) {
                out = s + i;
                n = adv;
            } else {
                tmp[0] = '?';
                adv = 1;
            }
        } else if (c < 0x20 || c == 0x7F) {
            tmp[0] = '?';
        } else if (pointer && (c == '~' || c == '/')) {
            tmp[0] = '~';
            tmp[1] = c == '~' ? '0' : '1';
            n = 2;
        } else if (!pointer && (c == '"' || c == '\\')) {
            tmp[0] = '\\';
            tmp[1] = (char) c;
            n = 2;
        } else {
            tmp[0] = (char) c;
        }
        if (written + n > limit) {
            if (size > *pos + 3) {
                memcpy(buf + *pos, "...", 3);
                *pos += 3;
            }
            break;
        }
        memcpy(buf + *pos, out, n);
        *pos += n;
        written += n;
        i += adv;
    }
    buf[*pos] = '\0';
}

void dw_json_path_append(char *buf, size_t size, const char *key, size_t key_len)
{
    /* buf holds a NUL-terminated path already */
    size_t pos;

    if (size == 0)
        return;
    pos = strlen(buf);
    if (pos + 2 > size - 1)
        return;
    buf[pos++] = '/';
    put_safe(buf, size, &pos, key, key_len, MESSAGE_TEXT_MAX, true);
}

void dw_json_quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t pos = 0;

    if (size < 3) {
        if (size)
            buf[0] = '\0';
        return;
    }
    buf[pos++] = '"';
    put_safe(buf, size - 1, &pos, s, len, MESSAGE_TEXT_MAX, false);
    buf[pos++] = '"';
    buf[pos] = '\0';
}

/* The JSON Pointer of the value being parsed, from the open frames. */
static void render_path(const struct parser *ps, char *buf, size_t size)
{
    buf[0] = '\0';
    for (unsigned k = 0; k < ps->depth; k++) {
        const struct frame *f = &ps->frames[k];

        if (f->object) {
            if (!f->key)
                return;
            dw_json_path_append(buf, size, f->key, f->key_len);
        } else {
            size_t next = k + 1 < ps->depth ? ps->frames[k + 1].base : ps->top;
            size_t pos = strlen(buf);

            if (pos + 1 < size)
                snprintf(buf + pos, size - pos, "/%zu", next - f->base);
        }
    }
}

static dw_errcode fail(struct parser *ps, dw_errcode code, const char *at, const char *fmt, ...)
    DW_PRINTF(4, 5);

static dw_errcode fail(struct parser *ps, dw_errcode code, const char *at, const char *fmt, ...)
{
    char path[160];
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    render_path(ps, path, sizeof(path));
    if (path[0])
        return dw_error_set(ps->err, code, "%s: %s at byte %zu", path, msg,
                            (size_t) (at - ps->start));
    return dw_error_set(ps->err, code, "%s at byte %zu", msg, (size_t) (at - ps->start));
}

static dw_errcode fail_nomem(struct parser *ps)
{
    return dw_error_set(ps->err, DW_ERR_NOMEM, "out of memory while parsing JSON");
}

/* "'x'" for a printable ASCII character, "byte 0xNN" otherwise. */
static const char *describe(const char *p, const char *end, char *buf, size_t size)
{
    unsigned char c;

    if (p >= end)
        return "end of input";
    c = (unsigned char) *p;
    if (c > 0x20 && c < 0x7F)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02X", c);
    return buf;
}

/* ---- lexical pieces ---- */

static inline void skip_ws(struct parser *ps)
{
    const char *p = ps->p;

    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Printable ASCII other than '"' and '\\': copied as is. */
static inline bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/*
 * True when some byte of the word might not be plain.  The tests are exact for
 * "any byte": a zero byte of w ^ c is a byte equal to c; bytes below 0x20 and
 * at or above 0x80 are caught by the subtraction and the high-bit mask.
 */
static inline bool word_special(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    uint64_t low = (w - ONES * 0x20) & ~w;

    return ((low | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS) != 0 || (w & HIGHS) != 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (bounded by end) into *v. */
static bool read_hex4(const char *p, const char *end, uint32_t *v)
{
    uint32_t r = 0;

    if (end - p < 4)
        return false;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);

        if (h < 0)
            return false;
        r = (r << 4) | (uint32_t) h;
    }
    *v = r;
    return true;
}

/*
 * Second pass over a string that has escapes: raw[0..raw_len) was checked by
 * the first pass except for the contents of \u escapes.
 */
static dw_errcode unescape(struct parser *ps, const char *raw, size_t raw_len, char *dst,
                           size_t *out_len)
{
    const char *s = raw, *end = raw + raw_len;
    char *d = dst;

    while (s < end) {
        const char *bs = memchr(s, '\\', (size_t) (end - s));
        uint32_t cp, lo;

        if (!bs) {
            memcpy(d, s, (size_t) (end - s));
            d += end - s;
            break;
        }
        memcpy(d, s, (size_t) (bs - s));
        d += bs - s;
        s = bs + 2;
        switch (bs[1]) {
        case '"': *d++ = '"'; continue;
        case '\\': *d++ = '\\'; continue;
        case '/': *d++ = '/'; continue;
        case 'b': *d++ = '\b'; continue;
        case 'f': *d++ = '\f'; continue;
        case 'n': *d++ = '\n'; continue;
        case 'r': *d++ = '\r'; continue;
        case 't': *d++ = '\t'; continue;
        default: break;   /* 'u': the first pass allowed nothing else */
        }
        if (!read_hex4(s, end, &cp))
            return fail(ps, DW_ERR_PROTOCOL, bs, "invalid \\u escape: expected four hex digits");
        s += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || !read_hex4(s + 2, end, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                return fail(ps, DW_ERR_PROTOCOL, bs,
                            "lone surrogate \\u%04X: a high surrogate must be followed by a low "
                            "surrogate escape", (unsigned) cp);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            s += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail(ps, DW_ERR_PROTOCOL, bs,
                        "lone surrogate \\u%04X: a low surrogate must follow a high surrogate",
                        (unsigned) cp);
        } else if (cp == 0) {
            return fail(ps, DW_ERR_PROTOCOL, bs,
                        "string contains \\u0000, which is not supported (values are C strings)");
        }
        d += dw_utf8_encode(cp, d);
    }
    *out_len = (size_t) (d - dst);
    return DW_OK;
}

/* A string at ps->p (the opening quote) into an arena copy. */
static dw_errcode parse_string(struct parser *ps, const char **out, size_t *out_len)
{
    const char *open = ps->p, *q = ps->p + 1, *end = ps->end;
    const char *body = q;
    bool escapes = false;
    size_t raw_len;
    char *dst;

    for (;;) {
        unsigned char c;

        while (end - q >= 8) {
            uint64_t w;

            memcpy(&w, q, 8);
            if (word_special(w))
                break;
            q += 8;
        }
        while (q < end && is_plain((unsigned char) *q))
            q++;
        if (q >= end)
            return fail(ps, DW_ERR_PROTOCOL, open, "unterminated string");
        c = (unsigned char) *q;
        if (c == '"')
            break;
        if (c == '\\') {
            if (q + 1 >= end)
                return fail(ps, DW_ERR_PROTOCOL, open, "unterminated string");
            if (!strchr("\"\\/bfnrtu", q[1]) || q[1] == '\0') {
                char d[16];

                return fail(ps, DW_ERR_PROTOCOL, q, "invalid escape: backslash followed by %s",
                            describe(q + 1, end, d, sizeof(d)));
            }
            escapes = true;
            q += 2;
        } else if (c < 0x20) {
            if (c == 0)
                return fail(ps, DW_ERR_PROTOCOL, q,
                            "string contains a NUL byte, which is not supported");
            return fail(ps, DW_ERR_PROTOCOL, q,
                        "unescaped control character 0x%02X in string", c);
        } else {
            uint32_t cp;
            size_t n;
            dw_utf8_status st = dw_utf8_decode(q, (size_t) (end - q), &cp, &n);

            if (st != DW_UTF8_OK)
                return fail(ps, DW_ERR_PROTOCOL, q, "invalid UTF-8 in string (%s)",
                            dw_utf8_status_text(st));
            q += n;
        }
    }
    raw_len = (size_t) (q - body);
    dst = dw_arena_alloc(ps->arena, raw_len + 1);
    if (!dst)
        return fail_nomem(ps);
    if (escapes) {
        dw_errcode rc = unescape(ps, body, raw_len, dst, out_len);

        if (rc != DW_OK)
            return rc;
    } else {
        memcpy(dst, body, raw_len);
        *out_len = raw_len;
    }
    dst[*out_len] = '\0';
    *out = dst;
    ps->p = q + 1;
    return DW_OK;
}

static dw_errcode parse_number(struct parser *ps, struct dw_json *v)
{
    const char *start = ps->p, *q = ps->p, *end = ps->end;
    bool integer = true;
    char *text;

    if (*q == '-')
        q++;
    if (q >= end || !is_digit(*q))
        return fail(ps, DW_ERR_PROTOCOL, q, "invalid number: expected a digit");
    if (*q == '0') {
        q++;
        if (q < end && is_digit(*q))
            return fail(ps, DW_ERR_PROTOCOL, start,
                        "invalid number: leading zeros are not allowed");
    } else {
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && *q == '.') {
        integer = false;
        q++;
        if (q >= end || !is_digit(*q))
            return fail(ps, DW_ERR_PROTOCOL, q,
                        "invalid number: expected a digit after the decimal point");
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        integer = false;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_digit(*q))
            return fail(ps, DW_ERR_PROTOCOL, q, "invalid number: expected a digit in the exponent");
        while (q < end && is_digit(*q))
            q++;
    }
    text = dw_arena_strndup(ps->arena, start, (size_t) (q - start));
    if (!text)
        return fail_nomem(ps);
    v->type = DW_JSON_NUMBER;
    v->integer = integer;
    v->len = (size_t) (q - start);
    v->u.number = text;
    ps->p = q;
    return DW_OK;
}

static dw_errcode parse_literal(struct parser *ps, struct dw_json *v)
{
    static const struct {
        const char *text;
        size_t len;
        dw_json_type type;
        bool value;
    } lits[] = {
        {"true", 4, DW_JSON_BOOL, true},
        {"false", 5, DW_JSON_BOOL, false},
        {"null", 4, DW_JSON_NULL, false},
    };

    for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
        if (*ps->p != lits[i].text[0])
            continue;
        if ((size_t) (ps->end - ps->p) < lits[i].len ||
            memcmp(ps->p, lits[i].text, lits[i].len) != 0)
            return fail(ps, DW_ERR_PROTOCOL, ps->p, "invalid literal: expected \"%s\"",
                        lits[i].text);
        v->type = lits[i].type;
        v->u.boolean = lits[i].value;
        ps->p += lits[i].len;
        return DW_OK;
    }
    return DW_ERR_INTERNAL;   /* not reached: the caller dispatches on t, f, n */
}

/* ---- containers ---- */

static dw_errcode push_frame(struct parser *ps, bool object)
{
    struct frame *f;

    if (ps->depth >= ps->max_depth)
        return fail(ps, DW_ERR_LIMIT, ps->p, "nesting depth exceeds the limit of %u",
                    ps->max_depth);
    if (ps->depth == ps->frames_cap) {
        unsigned cap = ps->frames_cap ? ps->frames_cap * 2 : 16;
        struct frame *nf = realloc(ps->frames, cap * sizeof(*nf));

        if (!nf)
            return fail_nomem(ps);
        ps->frames = nf;
        ps->frames_cap = cap;
    }
    f = &ps->frames[ps->depth++];
    f->object = object;
    f->offset = (size_t) (ps->p - ps->start);
    f->base = ps->top;
    f->key = NULL;
    f->key_len = 0;
    f->key_offset = 0;
    ps->p++;
    return DW_OK;
}

/* Member name and colon, at ps->p (after whitespace). */
static dw_errcode parse_key(struct parser *ps)
{
    struct frame *f = &ps->frames[ps->depth - 1];
    const char *at = ps->p;
    dw_errcode rc;
    char d[16];

    f->key = NULL;
    if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, DW_ERR_PROTOCOL, ps->p, "expected a member name in double quotes, found %s",
                    describe(ps->p, ps->end, d, sizeof(d)));
    rc = parse_string(ps, &f->key, &f->key_len);
    if (rc != DW_OK)
        return rc;
    f->key_offset = (size_t) (at - ps->start);
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != ':') {
        f->key = NULL;
        return fail(ps, DW_ERR_PROTOCOL, ps->p, "expected ':' after a member name, found %s",
                    describe(ps->p, ps->end, d, sizeof(d)));
    }
    ps->p++;
    return DW_OK;
}

static dw_errcode push_child(struct parser *ps, const struct dw_json *v)
{
    struct frame *f = &ps->frames[ps->depth - 1];
    struct entry *e;

    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        struct entry *ns;

        if (cap > SIZE_MAX / sizeof(*ns))
            return fail_nomem(ps);
        ns = realloc(ps->stack, cap * sizeof(*ns));
        if (!ns)
            return fail_nomem(ps);
        ps->stack = ns;
        ps->cap = cap;
    }
    e = &ps->stack[ps->top++];
    e->m.name = f->object ? f->key : NULL;
    e->m.name_len = f->object ? f->key_len : 0;
    e->m.value = *v;
    e->key_offset = f->key_offset;
    return DW_OK;
}

static bool same_name(const struct entry *a, const struct entry *b)
{
    return a->m.name_len == b->m.name_len && memcmp(a->m.name, b->m.name, a->m.name_len) == 0;
}

static int compare_names(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *) pa;
    const struct entry *b = *(const struct entry *const *) pb;
    size_t n = a->m.name_len < b->m.name_len ? a->m.name_len : b->m.name_len;
    int c = memcmp(a->m.name, b->m.name, n);

    if (c != 0)
        return c;
    if (a->m.name_len != b->m.name_len)
        return a->m.name_len < b->m.name_len ? -1 : 1;
    /* equal names stay in input order, so the later one follows */
    return a->key_offset < b->key_offset ? -1 : a->key_offset > b->key_offset;
}

/*
 * The earliest member whose name an earlier member already had, or NULL.
 * Both methods report the same member, so messages do not depend on size.
 */
static dw_errcode find_duplicate(struct parser *ps, const struct entry *kids, size_t n,
                                 const struct entry **dup)
{
    *dup = NULL;
    if (n <= PAIRWISE_MAX) {
        for (size_t j = 1; j < n; j++)
            for (size_t i = 0; i < j; i++)
                if (same_name(&kids[i], &kids[j])) {
                    *dup = &kids[j];
                    return DW_OK;
                }
        return DW_OK;
    }
    if (n > ps->sorted_cap) {
        const struct entry **ns;

        if (n > SIZE_MAX / sizeof(*ns))
            return fail_nomem(ps);
        ns = realloc(ps->sorted, n * sizeof(*ns));
        if (!ns)
            return fail_nomem(ps);
        ps->sorted = ns;
        ps->sorted_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        ps->sorted[i] = &kids[i];
    qsort(ps->sorted, n, sizeof(*ps->sorted), compare_names);
    for (size_t i = 0; i + 1 < n; i++) {
        const struct entry *later = ps->sorted[i + 1];

        if (same_name(ps->sorted[i], later) && (!*dup || later->key_offset < (*dup)->key_offset))
            *dup = later;
    }
    return DW_OK;
}

/* Turn the innermost frame and its children into a finished value. */
static dw_errcode close_container(struct parser *ps, struct dw_json *v)
{
    struct frame *f = &ps->frames[ps->depth - 1];
    const struct entry *kids = ps->stack + f->base;
    size_t n = ps->top - f->base;

    v->offset = f->offset;
    v->integer = false;
    v->len = n;
    if (f->object) {
        struct dw_json_member *members = NULL;
        const struct entry *dup;
        dw_errcode rc = find_duplicate(ps, kids, n, &dup);

        if (rc != DW_OK)
            return rc;
        if (dup) {
            char q[MESSAGE_TEXT_MAX + 8];

            f->key = NULL;   /* the path is the object's own */
            dw_json_quote(q, sizeof(q), dup->m.name, dup->m.name_len);
            return fail(ps, DW_ERR_PROTOCOL, ps->start + dup->key_offset, "duplicate key %s", q);
        }
        if (n) {
            if (n > SIZE_MAX / sizeof(*members) ||
                !(members = dw_arena_alloc(ps->arena, n * sizeof(*members))))
                return fail_nomem(ps);
            for (size_t i = 0; i < n; i++)
                members[i] = kids[i].m;
        }
        v->type = DW_JSON_OBJECT;
        v->u.members = members;
    } else {
        struct dw_json *items = NULL;

        if (n) {
            if (n > SIZE_MAX / sizeof(*items) ||
                !(items = dw_arena_alloc(ps->arena, n * sizeof(*items))))
                return fail_nomem(ps);
            for (size_t i = 0; i < n; i++)
                items[i] = kids[i].m.value;
        }
        v->type = DW_JSON_ARRAY;
        v->u.items = items;
    }
    ps->top = f->base;
    ps->depth--;
    return DW_OK;
}

/* ---- the driver ---- */

static dw_errcode parse(struct parser *ps, struct dw_json *root)
{
    char d[16];
    dw_errcode rc;

    for (;;) {
        struct dw_json v;

        /* a value starts here */
        skip_ws(ps);
        if (ps->p >= ps->end)
            return fail(ps, DW_ERR_PROTOCOL, ps->p, "unexpected end of input, expected a value");
        memset(&v, 0, sizeof(v));
        v.offset = (size_t) (ps->p - ps->start);
        switch (*ps->p) {
        case '{':
        case '[': {
            bool object = *ps->p == '{';

            rc = push_frame(ps, object);
            if (rc != DW_OK)
                return rc;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
                ps->p++;
                rc = close_container(ps, &v);
                break;
            }
            if (object && (rc = parse_key(ps)) != DW_OK)
                return rc;
            continue;   /* the first member's value */
        }
        case '"':
            v.type = DW_JSON_STRING;
            rc = parse_string(ps, &v.u.string, &v.len);
            break;
        case '-': case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            rc = parse_number(ps, &v);
            break;
        case 't':
        case 'f':
        case 'n':
            rc = parse_literal(ps, &v);
            break;
        default:
            return fail(ps, DW_ERR_PROTOCOL, ps->p, "unexpected %s, expected a value",
                        describe(ps->p, ps->end, d, sizeof(d)));
        }
        if (rc != DW_OK)
            return rc;

        /* v is complete: hand it to its container, closing containers as they end */
        for (;;) {
            struct frame *f;
            char close;

            if (ps->depth == 0) {
                *root = v;
                skip_ws(ps);
                if (ps->p < ps->end)
                    return fail(ps, DW_ERR_PROTOCOL, ps->p,
                                "unexpected %s after the end of the JSON value",
                                describe(ps->p, ps->end, d, sizeof(d)));
                return DW_OK;
            }
            rc = push_child(ps, &v);
            if (rc != DW_OK)
                return rc;
            f = &ps->frames[ps->depth - 1];
            close = f->object ? '}' : ']';
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                if (f->object) {
                    skip_ws(ps);
                    if ((rc = parse_key(ps)) != DW_OK)
                        return rc;
                }
                break;   /* the next value */
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                rc = close_container(ps, &v);
                if (rc != DW_OK)
                    return rc;
                continue;
            }
            if (ps->p >= ps->end)
                return fail(ps, DW_ERR_PROTOCOL, ps->p,
                            "unexpected end of input, expected ',' or '%c'", close);
            return fail(ps, DW_ERR_PROTOCOL, ps->p, "unexpected %s, expected ',' or '%c'",
                        describe(ps->p, ps->end, d, sizeof(d)), close);
        }
    }
}

dw_errcode dw_json_parse(const char *data, size_t len, const struct dw_json_limits *limits,
                         struct dw_arena *arena, struct dw_json **out, struct dw_error *err)
{
    struct parser ps;
    struct dw_json root;
    dw_errcode rc;

    *out = NULL;
    memset(&ps, 0, sizeof(ps));
    ps.start = ps.p = data ? data : "";
    ps.end = ps.start + (data ? len : 0);
    ps.arena = arena;
    ps.err = err;
    ps.max_depth = limits && limits->max_depth ? limits->max_depth : DW_JSON_DEFAULT_MAX_DEPTH;
    if (limits && limits->max_bytes && len > limits->max_bytes)
        return dw_error_set(err, DW_ERR_LIMIT, "input of %zu bytes exceeds the limit of %zu bytes",
                            len, limits->max_bytes);

    rc = parse(&ps, &root);
    if (rc == DW_OK) {
        struct dw_json *r = dw_arena_alloc(arena, sizeof(*r));

        if (!r) {
            rc = fail_nomem(&ps);
        } else {
            *r = root;
            *out = r;
        }
    }
    free(ps.frames);
    free(ps.stack);
    free(ps.sorted);
    return rc;
}

/* ---- access ---- */

const struct dw_json *dw_json_find(const struct dw_json *obj, const char *name)
{
    size_t n;

    if (!obj || obj->type != DW_JSON_OBJECT)
        return NULL;
    n = strlen(name);
    for (size_t i = 0; i < obj->len; i++) {
        const struct dw_json_member *m = &obj->u.members[i];

        if (m->name_len == n && memcmp(m->name, name, n) == 0)
            return &m->value;
    }
    return NULL;
}

bool dw_json_get_int64(const struct dw_json *v, int64_t *out)
{
    const char *s;
    bool neg;
    uint64_t acc = 0, limit;

    if (!v || v->type != DW_JSON_NUMBER || !v->integer)
        return false;
    s = v->u.number;
    neg = *s == '-';
    if (neg)
        s++;
    /* the magnitude of INT64_MIN is one more than INT64_MAX */
    limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    for (; *s; s++) {
        unsigned digit = (unsigned) (*s - '0');

        if (acc > (limit - digit) / 10)
            return false;
        acc = acc * 10 + digit;
    }
    if (neg)
        *out = acc == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) acc;
    else
        *out = (int64_t) acc;
    return true;
}

const char *dw_json_type_name(dw_json_type type)
{
    switch (type) {
    case DW_JSON_NULL: return "null";
    case DW_JSON_BOOL: return "a boolean";
    case DW_JSON_NUMBER: return "a number";
    case DW_JSON_STRING: return "a string";
    case DW_JSON_ARRAY: return "an array";
    case DW_JSON_OBJECT: return "an object";
    }
    return "an unknown value";
}
