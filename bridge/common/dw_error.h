/*
 * Error codes and the error record every fallible function fills.
 *
 * Fallible functions return a dw_errcode and take a struct dw_error * as their
 * last argument.  The first error set wins: later layers may add context but
 * never overwrite the message.  The record uses fixed buffers so that reporting
 * still works when memory has run out.  Only the PostgreSQL extension turns a
 * dw_error into an ereport; nothing here longjmps.
 */
#ifndef DW_ERROR_H
#define DW_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

/* Append-only: never renumber, never reuse a value. */
typedef enum dw_errcode {
    DW_OK = 0,
    DW_ERR_NOMEM,
    DW_ERR_CONFIG,
    DW_ERR_PROTOCOL,
    DW_ERR_CONNECT,
    DW_ERR_TARGET,
    DW_ERR_TIMEOUT,
    DW_ERR_LIMIT,
    DW_ERR_INTERNAL,
    DW_ERR_MAP,        /* a change breaks a table-map rule (pre-validation) */
    DW_ERR_THROTTLED   /* a window or concurrency limit, retry later */
} dw_errcode;

struct dw_error {
    dw_errcode code;
    char sqlstate[6];   /* the target's SQLSTATE, or "" */
    char message[256];
    char detail[512];
    char hint[256];
    char context[256];
};

#if defined(__GNUC__)
#define DW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define DW_MUST_CHECK __attribute__((warn_unused_result))
#else
#define DW_PRINTF(f, a)
#define DW_MUST_CHECK
#endif

/* Reset to "no error". Accepts NULL. */
void dw_error_clear(struct dw_error *err);

/* True when an error has been recorded. */
bool dw_error_is_set(const struct dw_error *err);

/*
 * Record an error unless one is already recorded (first error wins).
 * Returns code, so callers can write "return dw_error_set(err, ...)".
 * err may be NULL (the error is then only returned).
 */
dw_errcode dw_error_set(struct dw_error *err, dw_errcode code, const char *fmt, ...)
    DW_PRINTF(3, 4);
dw_errcode dw_error_setv(struct dw_error *err, dw_errcode code, const char *fmt, va_list ap);

/* Fill detail / hint / sqlstate of an already recorded error, if still empty. */
void dw_error_detail(struct dw_error *err, const char *fmt, ...) DW_PRINTF(2, 3);
void dw_error_hint(struct dw_error *err, const char *fmt, ...) DW_PRINTF(2, 3);
void dw_error_sqlstate(struct dw_error *err, const char *sqlstate);

/*
 * Prefix the message with "prefix: " (for example a file name), keeping the
 * original text; truncates safely.  Used by outer layers to add where.
 */
void dw_error_prefix(struct dw_error *err, const char *fmt, ...) DW_PRINTF(2, 3);

/* Stable lowercase name of a code ("config", "protocol", ...). */
const char *dw_errcode_name(dw_errcode code);

#endif
