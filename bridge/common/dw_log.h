/*
 * Logging: one line per event, with levels and a swappable sink.
 *
 * The default sink writes "LEVEL: message" lines to stderr.  The service can
 * install a sink that adds timestamps; tests install one that captures lines.
 * Secrets and row values are never passed to dw_log at levels above DEBUG.
 */
#ifndef DW_LOG_H
#define DW_LOG_H

#include "bridge/common/dw_error.h"

typedef enum dw_log_level {
    DW_LOG_DEBUG = 0,
    DW_LOG_INFO,
    DW_LOG_WARNING,
    DW_LOG_ERROR
} dw_log_level;

typedef void (*dw_log_sink)(dw_log_level level, const char *line, void *arg);

/* Install a sink (NULL restores the default stderr sink). */
void dw_log_set_sink(dw_log_sink sink, void *arg);
/* Lines below this level are dropped before formatting. Default INFO. */
void dw_log_set_level(dw_log_level level);
dw_log_level dw_log_get_level(void);
/* Parse "debug", "info", "warning", "error"; returns false when unknown. */
bool dw_log_parse_level(const char *name, dw_log_level *out);
const char *dw_log_level_name(dw_log_level level);

void dw_log(dw_log_level level, const char *fmt, ...) DW_PRINTF(2, 3);

#define dw_debug(...) dw_log(DW_LOG_DEBUG, __VA_ARGS__)
#define dw_info(...) dw_log(DW_LOG_INFO, __VA_ARGS__)
#define dw_warn(...) dw_log(DW_LOG_WARNING, __VA_ARGS__)
#define dw_logerr(...) dw_log(DW_LOG_ERROR, __VA_ARGS__)

#endif
