/*
 * Writing a source value (text, as PostgreSQL's output functions render it
 * under the hook's pinned DateStyle ISO, TimeZone UTC, IntervalStyle postgres)
 * as an OData v4 value of a property's EDM type: a key literal in a URL path
 * (OData 4.0 Part 2, ABNF "primitiveLiteral") or a JSON value in a request
 * body (OData JSON Format 4.0, section 7.1).
 *
 * Values are checked and normalized on the way, so that the service sees one
 * form per type ("t" becomes true, "2024-06-01 12:00:00+00" becomes
 * 2024-06-01T12:00:00Z, "007" becomes 7) and a value the type cannot hold is
 * refused here with a message naming the property and the type, before
 * anything is sent.
 */
#ifndef DW_ODATA_ENCODE_H
#define DW_ODATA_ENCODE_H

#include <stddef.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"
#include "connectors/odata/dw_odata_metadata.h"

/*
 * Append value as the key literal of property p, percent-encoded for a URL
 * path segment (strings quoted with '' doubling).  A NULL value, a value the
 * type cannot hold, or a type that cannot be a key is DW_ERR_TARGET.
 */
dw_errcode dw_odata_put_key_literal(struct dw_buf *b, const struct dw_odata_property *p,
                                    const char *value, struct dw_error *err);

/* Append value (NULL: null) as the JSON value of property p. */
dw_errcode dw_odata_put_json_value(struct dw_buf *b, const struct dw_odata_property *p,
                                   const char *value, struct dw_error *err);

/* Percent-encode s[0..n) for a URL path segment: all but ALPHA DIGIT - . _ ~ : */
void dw_odata_put_pct(struct dw_buf *b, const char *s, size_t n);

#endif
