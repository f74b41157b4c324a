/*
 * What the odata connector knows of a service's data model, read from its
 * CSDL document ($metadata): the entity sets, the properties of their entity
 * types with their EDM types, the key, the alternate keys and the navigation
 * properties.  The connector renders key literals and JSON values by these
 * types, and checks maps against them at startup.
 *
 * The document is scanned, not validated: a small XML tokenizer (no DTDs, no
 * external anything) that keeps only the elements above.  Everything of a
 * parsed model lives in its arena and is read-only, so one model can be
 * shared by the sessions of a connector on many threads.
 */
#ifndef DW_ODATA_METADATA_H
#define DW_ODATA_METADATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"

/* How values of a property are written; from its EDM primitive type. */
typedef enum dw_odata_kind {
    DW_ODATA_STRING = 0,
    DW_ODATA_INT,            /* Edm.Byte, SByte, Int16, Int32, Int64 (range in min/max) */
    DW_ODATA_DECIMAL,
    DW_ODATA_DOUBLE,         /* Edm.Double, Edm.Single */
    DW_ODATA_BOOLEAN,
    DW_ODATA_DATE,
    DW_ODATA_DATETIMEOFFSET,
    DW_ODATA_TIMEOFDAY,
    DW_ODATA_GUID,
    DW_ODATA_BINARY,
    DW_ODATA_DURATION,
    DW_ODATA_ENUM,           /* an EnumType: member names as strings */
    DW_ODATA_OTHER           /* complex, collection, spatial, stream: not supported */
} dw_odata_kind;

struct dw_odata_property {
    const char *name;
    const char *type;        /* as declared: "Edm.Int32", "NS.Color", "Collection(Edm.String)" */
    dw_odata_kind kind;
    int64_t min, max;        /* DW_ODATA_INT: the type's range */
};

struct dw_odata_altkey {
    size_t n;
    const char *const *names;    /* property names, in declaration order */
};

struct dw_odata_set {
    const char *name;
    const char *type;            /* qualified name of its entity type */
    size_t nprops;
    const struct dw_odata_property *props;       /* sorted by name (strcmp) */
    size_t nkey;
    const struct dw_odata_property *const *key;  /* in key order */
    size_t naltkeys;
    const struct dw_odata_altkey *altkeys;
    size_t nnavs;
    const char *const *navs;     /* navigation property names, sorted */
};

struct dw_odata_metadata {
    size_t nsets;
    const struct dw_odata_set *sets;   /* sorted by name */
    struct dw_arena arena;             /* owns everything above */
};

/*
 * Parse a CSDL XML document.  On success *out is a new model (free with
 * dw_odata_metadata_free).  Malformed XML, a DTD, or an entity set whose type
 * cannot be resolved is DW_ERR_PROTOCOL; an entity type without a key is
 * accepted (its sets cannot be written and check_key says so).
 */
dw_errcode dw_odata_metadata_parse(const char *xml, size_t len, struct dw_odata_metadata **out,
                                   struct dw_error *err) DW_MUST_CHECK;
void dw_odata_metadata_free(struct dw_odata_metadata *m);

/* Borrowed lookups; NULL when absent.  Names are case-sensitive. */
const struct dw_odata_set *dw_odata_metadata_set(const struct dw_odata_metadata *m,
                                                 const char *name);
const struct dw_odata_property *dw_odata_set_property(const struct dw_odata_set *set,
                                                      const char *name);
bool dw_odata_set_has_nav(const struct dw_odata_set *set, const char *name);

/* "Edm.Int32" and the like for messages; the kind's name otherwise. */
const char *dw_odata_kind_name(dw_odata_kind kind);

#endif
