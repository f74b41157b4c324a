/*
 * The error record: first error wins, fixed buffers, safe truncation.
 *
 * Truncation cuts at a UTF-8 character boundary: messages quote user data
 * (column names, values, target messages), and a split character would make
 * the extension's ereport emit invalid UTF-8 to the client.
 */
#include "bridge/common/dw_error.h"

#include <stdio.h>
#include <string.h>

#include "bridge/common/dw_utf8.h"

/* vsnprintf into dst, then drop a character that truncation left incomplete. */
static void format_into(char *dst, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(dst, size, fmt, ap);

    if (n >= 0 && (size_t) n >= size) {
        size_t len = strlen(dst);

        dst[dw_utf8_boundary(dst, len)] = '\0';
    }
}

void dw_error_clear(struct dw_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

bool dw_error_is_set(const struct dw_error *err)
{
    return err && err->code != DW_OK;
}

dw_errcode dw_error_setv(struct dw_error *err, dw_errcode code, const char *fmt, va_list ap)
{
    if (!err || err->code != DW_OK)
        return code;
    err->code = code;
    format_into(err->message, sizeof(err->message), fmt, ap);
    return code;
}

dw_errcode dw_error_set(struct dw_error *err, dw_errcode code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dw_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

static void fill_if_empty(char *dst, size_t size, const char *fmt, va_list ap)
{
    if (dst[0] == '\0')
        format_into(dst, size, fmt, ap);
}

void dw_error_detail(struct dw_error *err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    fill_if_empty(err->detail, sizeof(err->detail), fmt, ap);
    va_end(ap);
}

void dw_error_hint(struct dw_error *err, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    fill_if_empty(err->hint, sizeof(err->hint), fmt, ap);
    va_end(ap);
}

void dw_error_sqlstate(struct dw_error *err, const char *sqlstate)
{
    if (!err || err->sqlstate[0] != '\0' || !sqlstate)
        return;
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate);
}

void dw_error_prefix(struct dw_error *err, const char *fmt, ...)
{
    char prefix[sizeof(err->message)];
    /* room for both whole, so that only the final copy truncates */
    char joined[2 * sizeof(err->message) + 2];
    size_t len;
    va_list ap;

    if (!err)
        return;
    va_start(ap, fmt);
    format_into(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof(joined), "%s: %s", prefix, err->message);
    len = strlen(joined);
    if (len >= sizeof(err->message))
        len = dw_utf8_boundary(joined, sizeof(err->message) - 1);
    memcpy(err->message, joined, len);
    err->message[len] = '\0';
}

const char *dw_errcode_name(dw_errcode code)
{
    switch (code) {
    case DW_OK: return "ok";
    case DW_ERR_NOMEM: return "out of memory";
    case DW_ERR_CONFIG: return "config";
    case DW_ERR_PROTOCOL: return "protocol";
    case DW_ERR_CONNECT: return "connect";
    case DW_ERR_TARGET: return "target";
    case DW_ERR_TIMEOUT: return "timeout";
    case DW_ERR_LIMIT: return "limit";
    case DW_ERR_INTERNAL: return "internal";
    case DW_ERR_MAP: return "map";
    case DW_ERR_THROTTLED: return "throttled";
    }
    return "unknown";
}
