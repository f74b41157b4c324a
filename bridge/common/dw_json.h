/*
 * A strict JSON parser (RFC 8259) for the wire format.
 *
 * We do not use cJSON here: the PostgreSQL extension links this code, and the
 * wire format must reject what cJSON tolerates (invalid UTF-8, lone
 * surrogates, duplicate keys, leading zeros, trailing garbage).  The parser
 * makes one pass over the input and builds a compact, read-only tree in a
 * struct dw_arena; it never calls malloc per node and never longjmps.
 *
 * Every string in the tree is a NUL-terminated, valid UTF-8 copy.  Because our
 * consumers keep C strings, a string that contains U+0000 is rejected.
 * Objects keep their members in input order and never contain two members with
 * the same name.  Errors name the JSON Pointer of the value being parsed and
 * the byte offset: "/changes/2/new/total: invalid UTF-8 in string (overlong
 * encoding) at byte 812".
 */
#ifndef DW_JSON_H
#define DW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"

typedef enum dw_json_type {
    DW_JSON_NULL = 0,
    DW_JSON_BOOL,
    DW_JSON_NUMBER,
    DW_JSON_STRING,
    DW_JSON_ARRAY,
    DW_JSON_OBJECT
} dw_json_type;

struct dw_json_member;

struct dw_json {
    dw_json_type type;
    bool integer;       /* DW_JSON_NUMBER written without fraction or exponent */
    size_t offset;      /* byte offset of the value's first character in the input */
    size_t len;         /* STRING: bytes (no NUL); NUMBER: length of the literal;
                         * ARRAY: items; OBJECT: members */
    union {
        bool boolean;
        const char *string;              /* NUL-terminated, valid UTF-8 */
        const char *number;              /* the literal as written, NUL-terminated */
        struct dw_json *items;           /* NULL when empty */
        struct dw_json_member *members;  /* NULL when empty, in input order */
    } u;
};

struct dw_json_member {
    const char *name;   /* NUL-terminated, valid UTF-8 */
    size_t name_len;
    struct dw_json value;
};

/* Limits applied while parsing; exceeding either is DW_ERR_LIMIT. */
struct dw_json_limits {
    size_t max_bytes;       /* 0: no limit */
    unsigned max_depth;     /* open objects and arrays; 0: DW_JSON_DEFAULT_MAX_DEPTH */
};

#define DW_JSON_DEFAULT_MAX_DEPTH 64

/*
 * Parse data[0..len) as one JSON value (surrounding whitespace allowed).
 * limits may be NULL (defaults).  On success *out points to the root, which
 * like everything it references lives in arena; the input may be freed.  On
 * failure *out is NULL, err holds DW_ERR_PROTOCOL (malformed), DW_ERR_LIMIT
 * (too large or too deep) or DW_ERR_NOMEM, and the arena may hold partial
 * results (reset it).
 */
dw_errcode dw_json_parse(const char *data, size_t len, const struct dw_json_limits *limits,
                         struct dw_arena *arena, struct dw_json **out,
                         struct dw_error *err) DW_MUST_CHECK;

/* The member named name of an object (borrowed), or NULL. Linear search. */
const struct dw_json *dw_json_find(const struct dw_json *obj, const char *name);

/*
 * The value of an integer number: false when v is not a number, has a
 * fraction or exponent, or does not fit in int64_t.
 */
bool dw_json_get_int64(const struct dw_json *v, int64_t *out);

/* "null", "a boolean", "a number", "a string", "an array", "an object". */
const char *dw_json_type_name(dw_json_type type);

/*
 * Helpers for messages (used on error paths only).  Both write into
 * buf[0..size), always NUL-terminated, and keep the result one line of valid
 * UTF-8: control characters and invalid bytes become '?', long text is cut at
 * a character boundary and marked with "...".
 *
 * dw_json_path_append adds "/" and key as a JSON Pointer token (RFC 6901:
 * '~' as "~0", '/' as "~1") to the path already in buf.
 * dw_json_quote puts s in double quotes.
 */
void dw_json_path_append(char *buf, size_t size, const char *key, size_t key_len);
void dw_json_quote(char *buf, size_t size, const char *s, size_t len);

#endif
