/*
 * The bridge's HTTP API (DESIGN.md section 4) on libmicrohttpd: a Unix
 * socket (mode 0660) and optionally TCP with a bearer token.
 *
 * One thread per connection: a batch blocks its thread on the target for as
 * long as the target takes, and must not stall any other backend's
 * connection; a hook keeps its connection alive across transactions, so the
 * batches of one source session arrive, and are applied, in order.
 */
#ifndef DW_HTTP_H
#define DW_HTTP_H

#include "bridge/common/dw_error.h"
#include "bridge/service/dw_config.h"

struct dw_http;

/*
 * Create the listening sockets named in cfg (a stale Unix socket file is
 * replaced; a live one is an error) and start serving.  The token and body
 * limit are read from the installed state at each request, so a reload
 * changes them; the listen addresses need a restart.
 */
dw_errcode dw_http_start(const struct dw_config *cfg, struct dw_http **out,
                         struct dw_error *err) DW_MUST_CHECK;

/* Stop accepting connections and answer new batches with 503 (drain). */
void dw_http_quiesce(struct dw_http *http);

/* Stop serving, close and remove the sockets, free.  Accepts NULL. */
void dw_http_stop(struct dw_http *http);

/* The listen settings differ (a reload cannot apply them). */
bool dw_http_listen_changed(const struct dw_http *http, const struct dw_config *cfg);

#endif
