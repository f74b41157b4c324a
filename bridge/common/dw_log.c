/*
 * Logging with levels and a swappable sink.  The level check happens before
 * formatting so that disabled debug lines cost a comparison.
 */
#include "bridge/common/dw_log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static dw_log_sink current_sink;
static void *current_arg;
/* Atomic: the service changes the level on reload while other threads log. */
static _Atomic int current_level = DW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

void dw_log_set_sink(dw_log_sink sink, void *arg)
{
    current_sink = sink;
    current_arg = arg;
}

void dw_log_set_level(dw_log_level level)
{
    atomic_store_explicit(&current_level, (int) level, memory_order_relaxed);
}

dw_log_level dw_log_get_level(void)
{
    return (dw_log_level) atomic_load_explicit(&current_level, memory_order_relaxed);
}

const char *dw_log_level_name(dw_log_level level)
{
    if ((unsigned) level < sizeof(level_names) / sizeof(level_names[0]))
        return level_names[level];
    return "unknown";
}

bool dw_log_parse_level(const char *name, dw_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (dw_log_level) i;
            return true;
        }
    }
    return false;
}

void dw_log(dw_log_level level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;

    if ((int) level < atomic_load_explicit(&current_level, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (current_sink) {
        current_sink(level, line, current_arg);
        return;
    }
    fprintf(stderr, "%s: %s\n", dw_log_level_name(level), line);
}
