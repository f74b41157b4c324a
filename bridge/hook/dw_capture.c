/*
 * Capture: the row trigger dualwrite.capture() and the transaction's list of
 * changes.  (TRUNCATE of replicated tables is refused in dw_truncate.c.)
 *
 * A capture trigger's arguments are the comma-separated names of the table
 * maps covering its table (informational), then the columns to capture.  For
 * each trigger we cache, per backend, the column numbers and the columns'
 * output functions, and rebuild that entry when the table's relcache entry is
 * invalidated (ALTER TABLE, CREATE/DROP TRIGGER).  Values are rendered to text
 * under pinned settings (DateStyle ISO, IntervalStyle postgres, TimeZone UTC,
 * extra_float_digits 3, bytea_output hex), set through a GUC nest level only
 * when a captured column's type depends on a setting that differs from the
 * pinned one, so the text is the same whatever the session's settings.
 *
 * Each change is one allocation in CurTransactionContext (a rolled-back
 * savepoint frees its own changes' memory) and is tagged with the
 * subtransaction that made it; the array of changes lives in
 * TopTransactionContext.  A subtransaction's changes are always the tail of
 * the array (every change made after it started belongs to it once its
 * committed children have been folded in), so releasing or rolling back a
 * savepoint only touches that tail.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "bridge/hook/dw_hook_int.h"

/* Settings a column's text form depends on. */
#define PIN_DATETIME 0x01 /* DateStyle, IntervalStyle, TimeZone */
#define PIN_FLOAT 0x02    /* extra_float_digits */
#define PIN_BYTEA 0x04    /* bytea_output */
#define PIN_PATH 0x08     /* search_path (reg* types print qualified names) */
#define PIN_ALL (PIN_DATETIME | PIN_FLOAT | PIN_BYTEA | PIN_PATH)

/* Rough JSON overhead of one change, for the early size check. */
#define CHANGE_OVERHEAD 48

/* A table's name and captured columns as one transaction saw them. */
struct xact_table {
    const char *name; /* "schema.relname", unquoted */
    int ncols;
    const char **colnames;
};

/* Per-trigger cache entry (backend lifetime, rebuilt after invalidation). */
struct capture_entry {
    Oid tgoid;           /* hash key */
    Oid relid;           /* the table the trigger fires on */
    Oid named_relid;     /* the table the batch names (partition root) */
    bool valid;
    MemoryContext cxt;   /* owns everything below */
    char *table;
    int ncols;
    char **colnames;
    AttrNumber *attnums;
    FmgrInfo *out;       /* output function of each column */
    int pins;            /* PIN_* the columns' types depend on */
    uint64 xt_generation;
    struct xact_table *xt; /* valid while xt_generation == xact_generation */
};

/* One captured change: a single allocation in CurTransactionContext. */
struct captured_change {
    SubTransactionId subid;
    dw_change_op op;
    size_t bytes;               /* estimated encoded size */
    struct xact_table *table;
    const char **old_values;    /* update, delete; NULL entry = SQL null */
    const char **new_values;    /* insert, update */
};

struct dw_capture_xact {
    size_t n;
    size_t cap;
    size_t bytes;               /* estimated encoded size of all changes */
    struct captured_change **changes;
};

struct dw_capture_xact *dw_capture_current = NULL;

static HTAB *entries = NULL;
static MemoryContext cache_cxt = NULL;
static MemoryContext render_cxt = NULL;
static uint64 xact_generation = 1;

PG_FUNCTION_INFO_V1(dw_capture);

static void
relcache_inval(Datum arg, Oid relid)
{
    HASH_SEQ_STATUS status;
    struct capture_entry *e;

    (void) arg;
    if (!entries)
        return;
    /* only mark: an entry may be in use right now (catalog access while rendering) */
    hash_seq_init(&status, entries);
    while ((e = hash_seq_search(&status)) != NULL) {
        if (relid == InvalidOid || e->relid == relid || e->named_relid == relid)
            e->valid = false;
    }
}

void
dw_capture_init(void)
{
    HASHCTL ctl;

    if (entries)
        return;
    cache_cxt = AllocSetContextCreate(CacheMemoryContext, "dualwrite capture cache",
                                      ALLOCSET_SMALL_SIZES);
    render_cxt = AllocSetContextCreate(TopMemoryContext, "dualwrite rendering",
                                       ALLOCSET_DEFAULT_SIZES);
    memset(&ctl, 0, sizeof(ctl));
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(struct capture_entry);
    ctl.hcxt = cache_cxt;
    entries = hash_create("dualwrite capture triggers", 32, &ctl,
                          HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    CacheRegisterRelcacheCallback(relcache_inval, (Datum) 0);
}

/* Which settings the text form of a value of this type depends on. */
static int
type_pins(Oid typid)
{
    Oid base = getBaseType(typid);
    Oid elem;

    switch (base) {
    case BOOLOID:
    case CHAROID:
    case NAMEOID:
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID:
    case NUMERICOID:
    case TEXTOID:
    case VARCHAROID:
    case BPCHAROID:
    case JSONOID:
    case JSONBOID:
    case XMLOID:
    case UUIDOID:
    case INETOID:
    case CIDROID:
    case MACADDROID:
    case MACADDR8OID:
    case BITOID:
    case VARBITOID:
    case TIDOID:
    case XIDOID:
    case XID8OID:
    case CIDOID:
    case PG_LSNOID:
        return 0;
    case BYTEAOID:
        return PIN_BYTEA;
    case FLOAT4OID:
    case FLOAT8OID:
    case POINTOID:
    case LSEGOID:
    case PATHOID:
    case BOXOID:
    case POLYGONOID:
    case LINEOID:
    case CIRCLEOID:
        return PIN_FLOAT;
    case DATEOID:
    case TIMEOID:
    case TIMETZOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
    case INTERVALOID:
        return PIN_DATETIME;
    case REGPROCOID:
    case REGPROCEDUREOID:
    case REGOPEROID:
    case REGOPERATOROID:
    case REGCLASSOID:
    case REGTYPEOID:
    case REGCONFIGOID:
    case REGDICTIONARYOID:
    case REGNAMESPACEOID:
    case REGROLEOID:
    case REGCOLLATIONOID:
        return PIN_PATH;
    default:
        break;
    }
    if (type_is_enum(base))
        return 0;
    elem = get_element_type(base);
    if (OidIsValid(elem))
        return type_pins(elem);
    if (type_is_range(base))
        return type_pins(get_range_subtype(base));
    if (type_is_multirange(base))
        return type_pins(get_multirange_range(base));
    return PIN_ALL; /* composite and user-defined types: pin everything */
}

/*
 * The relation a change is named after: the table itself, or, for a trigger
 * cloned onto a partition, the partitioned table the trigger was created on.
 */
static Oid
named_relation(Trigger *tg, Relation rel)
{
    List *ancestors;
    ListCell *lc;
    Oid named = RelationGetRelid(rel);

    if (!tg->tgisclone || !rel->rd_rel->relispartition)
        return named;
    ancestors = get_partition_ancestors(RelationGetRelid(rel));
    foreach (lc, ancestors) {
        Relation parent = relation_open(lfirst_oid(lc), AccessShareLock);
        TriggerDesc *td = parent->trigdesc;
        bool has = false;

        for (int i = 0; td && i < td->numtriggers; i++) {
            if (td->triggers[i].tgfoid == tg->tgfoid &&
                strcmp(td->triggers[i].tgname, tg->tgname) == 0) {
                has = true;
                break;
            }
        }
        relation_close(parent, NoLock);
        if (!has)
            break;
        named = lfirst_oid(lc);
    }
    list_free(ancestors);
    return named;
}

static void
build_entry(struct capture_entry *e, Trigger *tg, Relation rel)
{
    TupleDesc desc = RelationGetDescr(rel);
    MemoryContext old;
    Oid named;
    char *nsp;

    if (e->cxt)
        MemoryContextDelete(e->cxt);
    e->cxt = NULL;
    e->xt = NULL;
    e->xt_generation = 0;
    e->relid = RelationGetRelid(rel);
    e->named_relid = e->relid;

    if (tg->tgnargs < 2)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("dualwrite: trigger \"%s\" on table \"%s\" names no column to capture",
                        tg->tgname, RelationGetRelationName(rel)),
                 errhint("The arguments of dualwrite.capture() are the table maps, then the "
                         "columns: EXECUTE FUNCTION dualwrite.capture('orders', 'id', 'status').")));

    named = named_relation(tg, rel);
    e->named_relid = named;
    e->cxt = AllocSetContextCreate(cache_cxt, "dualwrite trigger", ALLOCSET_SMALL_SIZES);
    old = MemoryContextSwitchTo(e->cxt);

    nsp = get_namespace_name(get_rel_namespace(named));
    e->table = psprintf("%s.%s", nsp ? nsp : "?", get_rel_name(named));
    e->ncols = tg->tgnargs - 1;
    e->colnames = palloc(sizeof(char *) * e->ncols);
    e->attnums = palloc(sizeof(AttrNumber) * e->ncols);
    e->out = palloc0(sizeof(FmgrInfo) * e->ncols);
    e->pins = 0;
    for (int i = 0; i < e->ncols; i++) {
        const char *name = tg->tgargs[i + 1];
        Form_pg_attribute att = NULL;
        Oid typout;
        bool varlena;

        for (int j = 0; j < desc->natts; j++) {
            Form_pg_attribute a = TupleDescAttr(desc, j);

            if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0) {
                att = a;
                break;
            }
        }
        if (!att)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_COLUMN),
                     errmsg("dualwrite: column \"%s\" of table \"%s\" does not exist", name,
                            e->table),
                     errdetail("Trigger \"%s\" names it as a column to capture.", tg->tgname),
                     errhint("Reinstall the trigger with the table map's current columns.")));
        for (int k = 0; k < i; k++) {
            if (strcmp(e->colnames[k], name) == 0)
                ereport(ERROR,
                        (errcode(ERRCODE_DUPLICATE_COLUMN),
                         errmsg("dualwrite: trigger \"%s\" on table \"%s\" names column \"%s\" twice",
                                tg->tgname, e->table, name)));
        }
        e->colnames[i] = pstrdup(name);
        e->attnums[i] = att->attnum;
        getTypeOutputInfo(att->atttypid, &typout, &varlena);
        fmgr_info_cxt(typout, &e->out[i], e->cxt);
        e->pins |= type_pins(att->atttypid);
    }
    MemoryContextSwitchTo(old);
    e->valid = true;
}

static struct capture_entry *
get_entry(TriggerData *td)
{
    struct capture_entry *e;
    bool found;

    e = hash_search(entries, &td->tg_trigger->tgoid, HASH_ENTER, &found);
    if (!found) {
        e->valid = false;
        e->cxt = NULL;
        e->xt = NULL;
        e->xt_generation = 0;
        e->relid = InvalidOid;
        e->named_relid = InvalidOid;
    }
    if (!e->valid)
        build_entry(e, td->tg_trigger, td->tg_relation);
    return e;
}

static const char *
to_utf8(const char *s)
{
    return pg_server_to_any(s, strlen(s), PG_UTF8);
}

static struct xact_table *
get_xact_table(struct capture_entry *e)
{
    struct xact_table *xt;

    if (e->xt && e->xt_generation == xact_generation)
        return e->xt;
    xt = MemoryContextAlloc(TopTransactionContext, sizeof(*xt));
    xt->name = MemoryContextStrdup(TopTransactionContext, to_utf8(e->table));
    xt->ncols = e->ncols;
    xt->colnames = MemoryContextAlloc(TopTransactionContext, sizeof(char *) * e->ncols);
    for (int i = 0; i < e->ncols; i++)
        xt->colnames[i] = MemoryContextStrdup(TopTransactionContext, to_utf8(e->colnames[i]));
    e->xt = xt;
    e->xt_generation = xact_generation;
    return xt;
}

/* Zones whose offset is always zero print timestamps exactly as UTC does. */
static bool
zone_is_utc(void)
{
    static const char *const utc[] = {"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Universal",
                                      "Etc/Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT",
                                      "Greenwich", "Etc/Greenwich"};
    const char *name = pg_get_timezone_name(session_timezone);

    for (size_t i = 0; name && i < lengthof(utc); i++) {
        if (strcmp(name, utc[i]) == 0)
            return true;
    }
    return false;
}

static void
pin_one(int *nest, const char *name, const char *value)
{
    if (*nest < 0)
        *nest = NewGUCNestLevel();
    (void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                             false);
}

/*
 * Pin the settings the entry's types depend on, when they differ from the
 * pinned values.  Returns the GUC nest level to pop, or -1 when nothing was
 * set (the common case costs a few comparisons).
 */
static int
pin_settings(int pins)
{
    int nest = -1;

    if (pins & PIN_DATETIME) {
        if (DateStyle != USE_ISO_DATES)
            pin_one(&nest, "datestyle", "ISO");
        if (IntervalStyle != INTSTYLE_POSTGRES)
            pin_one(&nest, "intervalstyle", "postgres");
        if (!zone_is_utc())
            pin_one(&nest, "timezone", "UTC");
    }
    if ((pins & PIN_FLOAT) && extra_float_digits != 3)
        pin_one(&nest, "extra_float_digits", "3");
    if ((pins & PIN_BYTEA) && bytea_output != BYTEA_OUTPUT_HEX)
        pin_one(&nest, "bytea_output", "hex");
    if (pins & PIN_PATH)
        pin_one(&nest, "search_path", "pg_catalog");
    return nest;
}

/* Render the captured columns of slot into vals (render_cxt); returns the bytes. */
static size_t
render_row(struct capture_entry *e, TupleTableSlot *slot, char **vals)
{
    size_t bytes = 0;

    for (int i = 0; i < e->ncols; i++) {
        bool isnull;
        Datum d = slot_getattr(slot, e->attnums[i], &isnull);

        if (isnull) {
            vals[i] = NULL;
            bytes += 4;
        } else {
            vals[i] = OutputFunctionCall(&e->out[i], d);
            /* the wire is UTF-8 (a no-op in a UTF8 database) */
            vals[i] = pg_server_to_any(vals[i], strlen(vals[i]), PG_UTF8);
            bytes += strlen(vals[i]) + 1;
        }
        bytes += strlen(e->colnames[i]) + 6;
    }
    return bytes;
}

static void
too_large(void)
{
    ereport(ERROR,
            (errcode(ERRCODE_DW_PREVALIDATION),
             errmsg("dualwrite: transaction is too large to replicate"),
             errdetail("Its changes to replicated tables take more than %u MB, the largest batch "
                       "the bridge accepts.",
                       (unsigned) (DW_WIRE_MAX_BATCH_BYTES / (1024 * 1024))),
             errhint("Split the work into smaller transactions.")));
}

/* Copy the rendered images into one allocation and append it. */
static void
append_change(struct capture_entry *e, dw_change_op op, char **oldv, char **newv, size_t bytes)
{
    struct dw_capture_xact *x = dw_capture_current;
    struct xact_table *xt;
    struct captured_change *ch;
    size_t size, strbytes = 0;
    int nimages = (oldv ? 1 : 0) + (newv ? 1 : 0);
    char *p;

    if (!x) {
        x = MemoryContextAllocZero(TopTransactionContext, sizeof(*x));
        x->cap = 64;
        x->changes = MemoryContextAlloc(TopTransactionContext, sizeof(*x->changes) * x->cap);
        dw_capture_current = x;
    }
    if (x->bytes + bytes + CHANGE_OVERHEAD > DW_WIRE_MAX_BATCH_BYTES)
        too_large();
    xt = get_xact_table(e);
    for (int i = 0; i < e->ncols; i++) {
        if (oldv && oldv[i])
            strbytes += strlen(oldv[i]) + 1;
        if (newv && newv[i])
            strbytes += strlen(newv[i]) + 1;
    }
    if (x->n == x->cap) {
        x->changes = repalloc(x->changes, sizeof(*x->changes) * x->cap * 2);
        x->cap *= 2;
    }
    size = MAXALIGN(sizeof(*ch)) + sizeof(char *) * e->ncols * nimages + strbytes;
    ch = MemoryContextAlloc(CurTransactionContext, size);
    ch->subid = GetCurrentSubTransactionId();
    ch->op = op;
    ch->bytes = bytes + CHANGE_OVERHEAD;
    ch->table = xt;
    p = (char *) ch + MAXALIGN(sizeof(*ch));
    ch->old_values = NULL;
    ch->new_values = NULL;
    if (oldv) {
        ch->old_values = (const char **) p;
        p += sizeof(char *) * e->ncols;
    }
    if (newv) {
        ch->new_values = (const char **) p;
        p += sizeof(char *) * e->ncols;
    }
    for (int img = 0; img < 2; img++) {
        char **src = img == 0 ? oldv : newv;
        const char **dst = img == 0 ? ch->old_values : ch->new_values;

        if (!src)
            continue;
        for (int i = 0; i < e->ncols; i++) {
            if (src[i]) {
                size_t len = strlen(src[i]) + 1;

                memcpy(p, src[i], len);
                dst[i] = p;
                p += len;
            } else {
                dst[i] = NULL;
            }
        }
    }
    x->changes[x->n++] = ch;
    x->bytes += ch->bytes;
}

static void
check_trigger_call(FunctionCallInfo fcinfo, const char *fname)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("%s was not called by the trigger manager", fname)));
}

Datum
dw_capture(PG_FUNCTION_ARGS)
{
    TriggerData *td = (TriggerData *) fcinfo->context;
    struct capture_entry *e;
    TupleTableSlot *oldslot = NULL, *newslot = NULL;
    dw_change_op op;
    MemoryContext old;
    char **oldv = NULL, **newv = NULL;
    size_t bytes = 0;
    int nest;

    check_trigger_call(fcinfo, "dualwrite.capture()");
    if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("dualwrite: trigger \"%s\" on table \"%s\" must fire AFTER INSERT OR "
                        "UPDATE OR DELETE FOR EACH ROW",
                        td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation))));
    if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
        op = DW_CHANGE_INSERT;
        newslot = td->tg_trigslot;
    } else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
        op = DW_CHANGE_UPDATE;
        oldslot = td->tg_trigslot;
        newslot = td->tg_newslot;
    } else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
        op = DW_CHANGE_DELETE;
        oldslot = td->tg_trigslot;
    } else {
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("dualwrite: trigger \"%s\" on table \"%s\" must fire AFTER INSERT OR "
                        "UPDATE OR DELETE FOR EACH ROW",
                        td->tg_trigger->tgname, RelationGetRelationName(td->tg_relation))));
        return PointerGetDatum(NULL);
    }

    /* the only two bypasses, both visible: the bridge's own sessions and the kill switch */
    if (!dw_guc_enabled || (dw_guc_origin && dw_guc_origin[0] != '\0'))
        return PointerGetDatum(NULL);

    if (!entries)
        dw_capture_init();
    e = get_entry(td);
    MemoryContextReset(render_cxt);
    old = MemoryContextSwitchTo(render_cxt);
    nest = pin_settings(e->pins);
    if (oldslot) {
        oldv = palloc(sizeof(char *) * e->ncols);
        bytes += render_row(e, oldslot, oldv);
    }
    if (newslot) {
        newv = palloc(sizeof(char *) * e->ncols);
        bytes += render_row(e, newslot, newv);
    }
    if (nest >= 0)
        AtEOXact_GUC(true, nest);
    MemoryContextSwitchTo(old);

    append_change(e, op, oldv, newv, bytes + strlen(e->table));
    MemoryContextReset(render_cxt);
    return PointerGetDatum(NULL);
}

size_t
dw_capture_count(void)
{
    return dw_capture_current ? dw_capture_current->n : 0;
}

void
dw_capture_reset(void)
{
    if (dw_capture_current) {
        /* the memory goes with the transaction's contexts */
        dw_capture_current = NULL;
        xact_generation++;
    }
}

void
dw_capture_subxact(SubXactEvent event, SubTransactionId my_subid,
                   SubTransactionId parent_subid)
{
    struct dw_capture_xact *x = dw_capture_current;

    if (!x)
        return;
    if (event == SUBXACT_EVENT_COMMIT_SUB) {
        for (size_t i = x->n; i > 0 && x->changes[i - 1]->subid == my_subid; i--)
            x->changes[i - 1]->subid = parent_subid;
    } else if (event == SUBXACT_EVENT_ABORT_SUB) {
        /* the changes' memory is freed with the subtransaction's context */
        while (x->n > 0 && x->changes[x->n - 1]->subid == my_subid) {
            x->bytes -= x->changes[x->n - 1]->bytes;
            x->n--;
        }
    }
}

void
dw_capture_encode(struct dw_buf *b, const char *id, const char *system, const char *database,
                  const char *xid, int64 deadline_ms)
{
    struct dw_capture_xact *x = dw_capture_current;

    dw_wire_batch_begin(b, id, system, database, xid, NULL, deadline_ms);
    for (size_t i = 0; x && i < x->n; i++) {
        const struct captured_change *ch = x->changes[i];
        struct dw_row o, n;

        o.ncols = n.ncols = (size_t) ch->table->ncols;
        o.names = n.names = ch->table->colnames;
        o.values = ch->old_values;
        n.values = ch->new_values;
        dw_wire_batch_change(b, ch->table->name, ch->op, ch->old_values ? &o : NULL,
                             ch->new_values ? &n : NULL);
    }
    dw_wire_batch_end(b);
}
