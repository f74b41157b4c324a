/*
 * The answer to a $batch that holds one changeset (OData 4.0 Part 1, 11.7.4),
 * parsed strictly: multipart/mixed (RFC 2046) with CRLF line endings, one
 * top-level part that is either the changeset's answer (multipart/mixed of
 * application/http parts, one per request) or a single application/http
 * part (the changeset failed), each holding an HTTP/1.x response.
 *
 * Anything else is DW_ERR_PROTOCOL with a message that says what was wrong:
 * a missing or unknown boundary, a truncated body (no close delimiter), bare
 * LF line endings, a boundary string inside a part, header folding, a part
 * that is not application/http, a bad status line.  The connector never
 * reports a commit from a response this parser refused.
 */
#ifndef DW_ODATA_MULTIPART_H
#define DW_ODATA_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"

/* Caps on what a response may hold. */
#define DW_ODATA_MAX_PARTS 100000
#define DW_ODATA_MAX_HEADERS 64
#define DW_ODATA_MAX_BOUNDARY 70

/* One HTTP response inside the batch response. */
struct dw_odata_part {
    int status;                 /* 100..599 */
    const char *content_id;     /* the MIME part's Content-ID (else the response's), or NULL */
    const char *content_type;   /* the response's Content-Type, or NULL */
    const char *retry_after;    /* the response's Retry-After, or NULL */
    const char *body;           /* points into the parsed input; not NUL-terminated */
    size_t body_len;
};

struct dw_odata_response {
    bool changeset;             /* the parts came inside a changeset (not a single failure) */
    size_t nparts;
    const struct dw_odata_part *parts;
};

/*
 * Parse body[0..len) given the response's Content-Type.  Header strings are
 * copied into arena; bodies point into body, which must outlive *out.
 */
dw_errcode dw_odata_multipart_parse(const char *content_type, const char *body, size_t len,
                                    struct dw_arena *arena, struct dw_odata_response *out,
                                    struct dw_error *err) DW_MUST_CHECK;

/*
 * The boundary parameter of a multipart/mixed content type (quoted or not)
 * into out[0..size).  False when the type is not multipart/mixed or the
 * boundary is missing, empty, longer than 70 or holds characters RFC 2046
 * does not allow.
 */
bool dw_odata_multipart_boundary(const char *content_type, char *out, size_t size);

/* True when content_type's media type is type/subtype (case-insensitive, parameters ignored). */
bool dw_odata_media_type_is(const char *content_type, const char *type);

#endif
