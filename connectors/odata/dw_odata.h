/*
 * The OData v4 target connector (libcurl), DESIGN.md section 6: Dataverse and
 * other OData v4 web APIs.
 *
 * Settings: "url" (the service root, ending in '/'), "token" or "token_file"
 * (a bearer token; the file is read again whenever it changes), "ca_file"
 * (extra trust anchors for TLS).  A whole batch is one POST $batch holding one
 * changeset, so the service applies it atomically: upsert as PATCH
 * Set(key), delete as DELETE Set(key).  One-phase only: OData has no prepare.
 * connectors/odata/README.md documents the encoding and the failure modes.
 */
#ifndef DW_ODATA_H
#define DW_ODATA_H

#include "connectors/dw_connector.h"

extern const struct dw_connector_ops dw_odata_connector;

#endif
