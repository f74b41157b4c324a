/*
 * Parsing the multipart/mixed answer to a one-changeset $batch (see
 * dw_odata_multipart.h for the shape and the rules).
 *
 * Two levels of RFC 2046 bodies, then an HTTP/1.x response in each
 * application/http part.  A delimiter is CRLF "--" boundary, then optional
 * transport padding (spaces, tabs) and CRLF, or "--" for the close
 * delimiter; the CRLF before a delimiter belongs to the delimiter, not to the
 * part.  The boundary string followed by anything else inside the body is an
 * error: RFC 2046 forbids it in content, and accepting it would let a part's
 * text decide where parts end.
 */
#include "connectors/odata/dw_odata_multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADER_LINE 8192

/* A slice of the input. */
struct span {
    const char *p;
    size_t n;
};

static dw_errcode bad(struct dw_error *err, const char *fmt, const char *arg)
{
    char msg[200];

    snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
    return dw_error_set(err, DW_ERR_PROTOCOL, "malformed $batch response: %s", msg);
}

static bool is_bchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

static bool is_tchar(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

bool dw_odata_media_type_is(const char *ct, const char *type)
{
    size_t n = strlen(type);

    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

bool dw_odata_multipart_boundary(const char *ct, char *out, size_t size)
{
    const char *p;

    if (!dw_odata_media_type_is(ct, "multipart/mixed"))
        return false;
    p = strchr(ct, ';');
    while (p) {
        size_t n = 0;

        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, "boundary=", 9) != 0) {
            p = strchr(p, ';');
            continue;
        }
        p += 9;
        if (*p == '"') {
            for (p++; p[n] && p[n] != '"'; n++)
                if (!is_bchar(p[n]))
                    return false;
            if (p[n] != '"' || (n > 0 && p[n - 1] == ' '))
                return false;
        } else {
            for (; is_tchar(p[n]); n++)
                if (!is_bchar(p[n]))
                    return false;
            if (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\t')
                return false;
        }
        if (n == 0 || n > DW_ODATA_MAX_BOUNDARY || n >= size)
            return false;
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- RFC 2046 bodies */

static bool starts(const char *p, const char *end, const char *s, size_t n)
{
    return (size_t) (end - p) >= n && memcmp(p, s, n) == 0;
}

/*
 * After "--boundary" at p: padding then CRLF (another part follows: 1), or
 * "--" (the close delimiter: 0), else -1.  *next is past what was read.
 */
static int after_delimiter(const char *p, const char *end, const char **next)
{
    if (starts(p, end, "--", 2)) {
        *next = p + 2;
        return 0;
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (!starts(p, end, "\r\n", 2))
        return -1;
    *next = p + 2;
    return 1;
}

/* Split body into its parts (between the delimiters), into *parts (malloc'd). */
static dw_errcode split(const char *body, size_t len, const char *boundary, const char *what,
                        struct span **parts, size_t *nparts, struct dw_error *err)
{
    const char *end = body + len, *p, *next;
    size_t bl = strlen(boundary), cap = 0;
    char delim[DW_ODATA_MAX_BOUNDARY + 5];
    int more;

    *parts = NULL;
    *nparts = 0;
    snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    /* the first delimiter may open the body or follow a preamble */
    if (starts(body, end, delim + 2, bl + 2)) {
        p = body + bl + 2;
    } else {
        p = NULL;
        for (const char *q = body; q + bl + 4 <= end; q++) {
            if (memcmp(q, delim, bl + 4) == 0) {
                p = q + bl + 4;
                break;
            }
        }
        if (!p)
            return bad(err, "%s has no delimiter line with its boundary", what);
    }
    more = after_delimiter(p, end, &next);
    if (more < 0)
        return bad(err, "a delimiter line of %s is followed by something other than a line end",
                   what);
    if (more == 0)
        return bad(err, "%s has no parts", what);
    for (;;) {
        const char *start = next, *q = NULL;
        struct span *s;

        for (const char *r = start; r + bl + 4 <= end; r++) {
            if (r[0] == '\r' && r[1] == '\n' && memcmp(r, delim, bl + 4) == 0) {
                q = r;
                break;
            }
        }
        if (!q) {
            free(*parts);
            *parts = NULL;
            return bad(err, "%s is truncated: its close delimiter is missing", what);
        }
        if (*nparts == DW_ODATA_MAX_PARTS) {
            free(*parts);
            *parts = NULL;
            return dw_error_set(err, DW_ERR_LIMIT, "$batch response has more than %d parts",
                                DW_ODATA_MAX_PARTS);
        }
        if (*nparts == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct span *np = realloc(*parts, ncap * sizeof(*np));

            if (!np) {
                free(*parts);
                *parts = NULL;
                return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            }
            *parts = np;
            cap = ncap;
        }
        s = &(*parts)[(*nparts)++];
        s->p = start;
        s->n = (size_t) (q - start);
        more = after_delimiter(q + bl + 4, end, &next);
        if (more < 0) {
            free(*parts);
            *parts = NULL;
            return bad(err, "the boundary of %s appears inside a part", what);
        }
        if (more == 0)
            return DW_OK;   /* the epilogue, if any, is ignored */
    }
}

/* ---------------------------------------------------------------- headers */

struct headers {
    const char *content_type, *content_id, *cte, *retry_after;
};

static char *copy_trimmed(struct dw_arena *arena, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return dw_arena_strndup(arena, v, n);
}

/*
 * Header lines from *p up to and including the empty line; *p moves past it.
 * Only the headers we use are kept; a repeated one of those is an error.
 */
static dw_errcode read_headers(const char **p, const char *end, struct dw_arena *arena,
                               struct headers *h, const char *what, struct dw_error *err)
{
    int count = 0;

    memset(h, 0, sizeof(*h));
    for (;;) {
        const char *line = *p, *eol = NULL, *colon;
        const char **slot = NULL;
        size_t n;

        for (const char *q = line; q < end; q++) {
            if (*q == '\n')
                return bad(err, "a line of %s ends in a bare LF, not CRLF", what);
            if (*q == '\r') {
                if (q + 1 >= end || q[1] != '\n')
                    return bad(err, "a line of %s ends in a bare CR, not CRLF", what);
                eol = q;
                break;
            }
        }
        if (!eol)
            return bad(err, "the headers of %s do not end with an empty line", what);
        *p = eol + 2;
        if (eol == line)
            return DW_OK;
        n = (size_t) (eol - line);
        if (n > MAX_HEADER_LINE || ++count > DW_ODATA_MAX_HEADERS)
            return bad(err, "the headers of %s are too long", what);
        if (*line == ' ' || *line == '\t')
            return bad(err, "%s folds a header over lines", what);
        colon = memchr(line, ':', n);
        if (!colon || colon == line)
            return bad(err, "a header line of %s has no name", what);
        for (const char *q = line; q < colon; q++)
            if (!is_tchar(*q))
                return bad(err, "a header name of %s holds an invalid character", what);
#define HEADER_IS(name) ((size_t) (colon - line) == sizeof(name) - 1 && \
                         strncasecmp(line, name, sizeof(name) - 1) == 0)
        if (HEADER_IS("Content-Type"))
            slot = &h->content_type;
        else if (HEADER_IS("Content-ID"))
            slot = &h->content_id;
        else if (HEADER_IS("Content-Transfer-Encoding"))
            slot = &h->cte;
        else if (HEADER_IS("Retry-After"))
            slot = &h->retry_after;
#undef HEADER_IS
        if (!slot)
            continue;
        if (*slot)
            return bad(err, "%s repeats a header", what);
        for (const char *q = colon + 1; q < eol; q++)
            if ((unsigned char) *q < 0x20 && *q != '\t')
                return bad(err, "a header value of %s holds a control character", what);
        *slot = copy_trimmed(arena, colon + 1, (size_t) (eol - colon - 1));
        if (!*slot)
            return dw_error_set(err, DW_ERR_NOMEM, "out of memory");
    }
}

/* ---------------------------------------------------------------- application/http */

static dw_errcode read_response(const struct span *part, struct dw_arena *arena,
                                struct dw_odata_part *out, struct dw_error *err)
{
    const char *p = part->p, *end = part->p + part->n;
    struct headers mime, http;
    int status = 0;
    dw_errcode rc;

    rc = read_headers(&p, end, arena, &mime, "a response part", err);
    if (rc != DW_OK)
        return rc;
    if (!dw_odata_media_type_is(mime.content_type, "application/http"))
        return bad(err, "a part has Content-Type \"%.60s\", not application/http",
                   mime.content_type ? mime.content_type : "(none)");
    if (mime.cte && strcasecmp(mime.cte, "binary") != 0)
        return bad(err, "a part has Content-Transfer-Encoding \"%.40s\", not binary", mime.cte);
    /* the status line: HTTP/1.x SSS reason */
    if (!starts(p, end, "HTTP/1.", 7) || end - p < 12 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ')
        return bad(err, "a part does not hold an HTTP/1.x response%s", NULL);
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return bad(err, "a response in a part has an invalid status code%s", NULL);
        status = status * 10 + (p[i] - '0');
    }
    if (status < 100 || status > 599)
        return bad(err, "a response in a part has an invalid status code%s", NULL);
    p += 12;
    if (p < end && *p != ' ' && *p != '\r')
        return bad(err, "a response in a part has an invalid status line%s", NULL);
    while (p < end && *p != '\r' && *p != '\n') {
        if ((unsigned char) *p < 0x20 && *p != '\t')
            return bad(err, "a response in a part has a control character in its status line%s",
                       NULL);
        p++;
    }
    if (!starts(p, end, "\r\n", 2))
        return bad(err, "the status line of a response in a part does not end in CRLF%s", NULL);
    p += 2;
    rc = read_headers(&p, end, arena, &http, "a response in a part", err);
    if (rc != DW_OK)
        return rc;
    out->status = status;
    out->content_id = mime.content_id ? mime.content_id : http.content_id;
    out->content_type = http.content_type;
    out->retry_after = http.retry_after;
    out->body = p;
    out->body_len = (size_t) (end - p);
    return DW_OK;
}

dw_errcode dw_odata_multipart_parse(const char *content_type, const char *body, size_t len,
                                    struct dw_arena *arena, struct dw_odata_response *out,
                                    struct dw_error *err)
{
    char boundary[DW_ODATA_MAX_BOUNDARY + 1], inner[DW_ODATA_MAX_BOUNDARY + 1];
    struct span *top = NULL, *parts = NULL;
    size_t ntop = 0, nparts = 0;
    struct dw_odata_part *res;
    struct headers h;
    const char *p;
    dw_errcode rc;

    memset(out, 0, sizeof(*out));
    if (!dw_odata_multipart_boundary(content_type, boundary, sizeof(boundary)))
        return bad(err, "Content-Type \"%.80s\" is not multipart/mixed with a valid boundary",
                   content_type ? content_type : "(none)");
    rc = split(body, len, boundary, "the response", &top, &ntop, err);
    if (rc != DW_OK)
        return rc;
    if (ntop != 1) {
        free(top);
        return dw_error_set(err, DW_ERR_PROTOCOL, "malformed $batch response: it has %zu parts, "
                            "but the request held one changeset", ntop);
    }
    p = top[0].p;
    rc = read_headers(&p, top[0].p + top[0].n, arena, &h, "the response's part", err);
    if (rc != DW_OK)
        goto out;
    if (dw_odata_media_type_is(h.content_type, "application/http")) {
        /* a failed changeset: one response */
        res = dw_arena_zalloc(arena, sizeof(*res));
        if (!res) {
            rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
            goto out;
        }
        rc = read_response(&top[0], arena, res, err);
        if (rc == DW_OK) {
            out->nparts = 1;
            out->parts = res;
        }
        goto out;
    }
    if (!dw_odata_multipart_boundary(h.content_type, inner, sizeof(inner))) {
        rc = bad(err, "the response's part has Content-Type \"%.80s\", neither a changeset nor "
                 "application/http", h.content_type ? h.content_type : "(none)");
        goto out;
    }
    rc = split(p, (size_t) (top[0].p + top[0].n - p), inner, "the changeset", &parts, &nparts, err);
    if (rc != DW_OK)
        goto out;
    res = dw_arena_zalloc(arena, nparts * sizeof(*res));
    if (!res) {
        rc = dw_error_set(err, DW_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nparts && rc == DW_OK; i++)
        rc = read_response(&parts[i], arena, &res[i], err);
    if (rc == DW_OK) {
        out->changeset = true;
        out->nparts = nparts;
        out->parts = res;
    }
out:
    free(top);
    free(parts);
    return rc;
}
