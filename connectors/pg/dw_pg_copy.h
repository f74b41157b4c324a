/*
 * The pg connector's bulk path (the apply_bulk slot of connectors/dw_connector.h),
 * used by the initial sync: COPY instead of one statement per row.
 * dw_pg_copy.c explains the strategy.
 */
#ifndef DW_PG_COPY_H
#define DW_PG_COPY_H

#include <stddef.h>

#include "connectors/dw_connector.h"

dw_errcode dw_pg_apply_bulk(struct dw_session *s, const struct dw_target_op *ops, size_t nops,
                            struct dw_error *err);

#endif
