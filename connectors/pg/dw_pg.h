/*
 * The PostgreSQL target connector (libpq), DESIGN.md section 6.
 *
 * Settings: "conninfo" (a libpq connection string or URI).  A whole batch is
 * one round trip in pipeline mode: BEGIN, one parameterized statement per
 * operation (upsert as INSERT ... ON CONFLICT DO UPDATE, delete by key), then
 * PREPARE TRANSACTION or COMMIT.  Two-phase when the configuration asks for it
 * or, with "auto", when the target's max_prepared_transactions is above zero.
 */
#ifndef DW_PG_H
#define DW_PG_H

#include "connectors/dw_connector.h"

extern const struct dw_connector_ops dw_pg_connector;

#endif
