/*
 * GET /v1/status and GET /v1/health: what the service runs and how it is
 * doing, as JSON (dwctl status prints the former as a table).
 */
#ifndef DW_STATUS_H
#define DW_STATUS_H

#include <stdbool.h>

#include "bridge/common/dw_buf.h"

/* Appends the status document to out. */
void dw_status_render(struct dw_buf *out, bool stopping);

/*
 * Appends the health document to out and returns the HTTP status: 200 when
 * every connector and the source are reachable as far as the service knows,
 * 503 otherwise (or while shutting down).
 */
int dw_status_health(struct dw_buf *out, bool stopping);

#endif
