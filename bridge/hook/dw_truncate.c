/*
 * TRUNCATE of replicated tables: refused, since the capture triggers see no
 * rows go and the target would keep every one of them.
 *
 * Two guards raise the same error.  The BEFORE TRUNCATE statement trigger
 * dualwrite.reject_truncate() fires wherever the module is loaded or not, but
 * only on the table it was created on: PostgreSQL does not clone statement
 * triggers onto partitions, so "TRUNCATE one_partition" of a replicated
 * partitioned table would pass it.  So a ProcessUtility hook looks at every
 * table a TRUNCATE statement is going to empty (the named ones; their
 * inheritance children and partitions unless ONLY; with CASCADE, the tables
 * that reference them, transitively) and refuses the statement when one of
 * them, or a partitioned table it is a partition of, carries a dualwrite
 * trigger.  The capture trigger is cloned onto partitions (with tgparentid
 * set), so a partition usually carries it itself; its ancestors are looked at
 * too, for the message and for a partition attached without the clone.
 *
 * The hook costs one node-tag test for any other statement, and takes no lock:
 * it runs before TRUNCATE locks anything (and before TRUNCATE checks the
 * privileges, which is why it stands aside when a named table may not be
 * truncated by the user at all: TRUNCATE then fails with its own message).
 * DDL committed between the check and TRUNCATE's locks (a partition attached
 * at that very moment) is not seen; the trigger still guards the tables it is
 * on.  The bypasses are the trigger's: dualwrite.enabled = off and
 * dualwrite.origin.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "bridge/hook/dw_hook_int.h"

/* The names `dwctl hooks install` gives the triggers. */
#define CAPTURE_TRIGGER "dualwrite_capture"
#define TRUNCATE_TRIGGER "dualwrite_truncate"

PG_FUNCTION_INFO_V1(dw_reject_truncate);

static ProcessUtility_hook_type prev_process_utility = NULL;

static bool
bypassed(void)
{
    return !dw_guc_enabled || (dw_guc_origin && dw_guc_origin[0] != '\0');
}

/*
 * The error both guards raise.  maps: the table maps the trigger names (may be
 * "" or NULL); via: the partitioned table whose trigger makes relid replicated,
 * or InvalidOid when relid carries it itself.
 */
static void
refuse(Oid relid, const char *maps, Oid via) pg_attribute_noreturn();

static void
refuse(Oid relid, const char *maps, Oid via)
{
    char *nsp = get_namespace_name(get_rel_namespace(relid));
    char *rel = get_rel_name(relid);
    bool have_maps = maps && maps[0] != '\0';

    if (OidIsValid(via)) {
        char *vnsp = get_namespace_name(get_rel_namespace(via));
        char *vrel = get_rel_name(via);

        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("dualwrite: cannot truncate table \"%s.%s\": it is replicated to the target",
                        nsp ? nsp : "?", rel ? rel : "?"),
                 have_maps ? errdetail("It is a partition of table \"%s.%s\". Table maps: %s.",
                                       vnsp ? vnsp : "?", vrel ? vrel : "?", maps)
                           : errdetail("It is a partition of table \"%s.%s\".", vnsp ? vnsp : "?",
                                       vrel ? vrel : "?"),
                 errhint("Delete the rows with DELETE instead, so that the target deletes them "
                         "too.")));
    }
    ereport(ERROR,
            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
             errmsg("dualwrite: cannot truncate table \"%s.%s\": it is replicated to the target",
                    nsp ? nsp : "?", rel ? rel : "?"),
             have_maps ? errdetail("Table maps: %s.", maps) : 0,
             errhint("Delete the rows with DELETE instead, so that the target deletes them "
                     "too.")));
    pg_unreachable();
}

/* ---- the trigger (second line of defence: works without the module's hook) ---- */

Datum
dw_reject_truncate(PG_FUNCTION_ARGS)
{
    TriggerData *td = (TriggerData *) fcinfo->context;

    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("dualwrite.reject_truncate() was not called by the trigger manager")));
    if (!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("dualwrite: trigger \"%s\" must fire BEFORE TRUNCATE",
                        td->tg_trigger->tgname)));
    if (bypassed())
        return PointerGetDatum(NULL);
    refuse(RelationGetRelid(td->tg_relation),
           td->tg_trigger->tgnargs > 0 ? td->tg_trigger->tgargs[0] : NULL, InvalidOid);
    return PointerGetDatum(NULL);
}

/* ---- the utility hook ---- */

/*
 * Does relid carry a dualwrite trigger?  Then *maps is its first argument
 * (the table maps; palloc'd, "" when it has none) and *cloned says whether it
 * is a partition's copy of its parent's trigger.
 */
static bool
has_dualwrite_trigger(Relation tgrel, Oid relid, const char **maps, bool *cloned)
{
    ScanKeyData key;
    SysScanDesc scan;
    HeapTuple tup;
    bool found = false;

    /* the (tgrelid, tgname) index, by its first column: the table's few triggers */
    ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
                ObjectIdGetDatum(relid));
    scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
    while (!found && HeapTupleIsValid(tup = systable_getnext(scan))) {
        Form_pg_trigger tg = (Form_pg_trigger) GETSTRUCT(tup);
        Datum args;
        bool isnull;

        if (strcmp(NameStr(tg->tgname), CAPTURE_TRIGGER) != 0 &&
            strcmp(NameStr(tg->tgname), TRUNCATE_TRIGGER) != 0)
            continue;
        found = true;
        *cloned = OidIsValid(tg->tgparentid);
        *maps = "";
        args = heap_getattr(tup, Anum_pg_trigger_tgargs, RelationGetDescr(tgrel), &isnull);
        if (!isnull && tg->tgnargs > 0) {
            bytea *ba = DatumGetByteaPP(args);
            const char *p = VARDATA_ANY(ba);

            /* the arguments follow each other, each ending with a NUL */
            *maps = pnstrdup(p, strnlen(p, VARSIZE_ANY_EXHDR(ba)));
        }
    }
    systable_endscan(scan);
    return found;
}

/* Refuse the statement when relid is replicated, itself or as a partition. */
static void
check_relation(Relation tgrel, Oid relid)
{
    const char *maps = NULL;
    bool cloned = false;
    bool own = has_dualwrite_trigger(tgrel, relid, &maps, &cloned);
    Oid via = InvalidOid;

    if (own && !cloned)
        refuse(relid, maps, InvalidOid);
    /* name the partitioned table the trigger was created on: the top-most one that has it */
    if (get_rel_relispartition(relid)) {
        List *ancestors = get_partition_ancestors(relid);
        ListCell *lc;

        foreach (lc, ancestors) {
            const char *amaps = NULL;
            bool acloned = false;

            if (has_dualwrite_trigger(tgrel, lfirst_oid(lc), &amaps, &acloned)) {
                via = lfirst_oid(lc);
                maps = amaps;
            }
        }
        list_free(ancestors);
    }
    if (own || OidIsValid(via))
        refuse(relid, maps, via);
}

static void
check_truncate(TruncateStmt *stmt)
{
    List *relids = NIL;
    ListCell *lc;
    Relation tgrel;

    /* what TRUNCATE is going to empty, in its order (ExecuteTruncate) */
    foreach (lc, stmt->relations) {
        RangeVar *rv = lfirst_node(RangeVar, lc);
        Oid relid = RangeVarGetRelid(rv, NoLock, true);
        bool missing = false;

        /* a missing table, or one the user may not truncate: TRUNCATE says so itself */
        if (!OidIsValid(relid) ||
            pg_class_aclcheck_ext(relid, GetUserId(), ACL_TRUNCATE, &missing) != ACLCHECK_OK ||
            missing) {
            list_free(relids);
            return;
        }
        if (rv->inh) {
            /* the table itself first, then every child and partition, all levels */
            List *all = find_all_inheritors(relid, NoLock, NULL);
            ListCell *c;

            foreach (c, all)
                relids = list_append_unique_oid(relids, lfirst_oid(c));
            list_free(all);
        } else {
            relids = list_append_unique_oid(relids, relid);
        }
    }
    if (stmt->behavior == DROP_CASCADE) {
        /* the tables that reference them, until nothing new comes (one scan of pg_constraint each) */
        for (;;) {
            List *more = heap_truncate_find_FKs(relids);

            if (more == NIL)
                break;
            foreach (lc, more)
                relids = list_append_unique_oid(relids, lfirst_oid(lc));
            list_free(more);
        }
    }

    tgrel = table_open(TriggerRelationId, AccessShareLock);
    foreach (lc, relids)
        check_relation(tgrel, lfirst_oid(lc));
    table_close(tgrel, AccessShareLock);
    list_free(relids);
}

static void
dw_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
                   ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
                   DestReceiver *dest, QueryCompletion *qc)
{
    /* every other statement: this one test, no catalog access */
    if (IsA(pstmt->utilityStmt, TruncateStmt) && !bypassed())
        check_truncate((TruncateStmt *) pstmt->utilityStmt);
    if (prev_process_utility)
        prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
    else
        standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest,
                                qc);
}

void
dw_truncate_init(void)
{
    prev_process_utility = ProcessUtility_hook;
    ProcessUtility_hook = dw_process_utility;
}
