/*
 * The ODBC target connector (unixODBC), DESIGN.md section 6.
 *
 * Settings: "connection_string" (DSN-less "DRIVER={...};..." or "DSN=...";
 * its secrets never appear in messages).  A batch is one manual-commit
 * transaction; statements are prepared once per shape and reused, runs of
 * operations of one shape go out as parameter arrays where the driver has
 * them.  The upsert dialect follows SQLGetInfo(SQL_DBMS_NAME): ON CONFLICT
 * (SQLite, PostgreSQL), ON DUPLICATE KEY UPDATE (MariaDB, MySQL), UPDATE then
 * INSERT otherwise.  Two-phase commit is XA on MariaDB.  connectors/odbc/
 * README.md tells users how to configure it.
 */
#ifndef DW_ODBC_H
#define DW_ODBC_H

#include "connectors/dw_connector.h"

extern const struct dw_connector_ops dw_odbc_connector;

#endif
