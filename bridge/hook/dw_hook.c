/*
 * The dualwrite extension's entry points: _PG_init (settings, callbacks, the
 * TRUNCATE guard's utility hook), the transaction callbacks, and the
 * pre-commit step.
 *
 * Pre-commit (XACT_EVENT_PRE_COMMIT, after deferred triggers, still inside
 * the transaction) is the only place where the hook may fail a transaction: a
 * transaction with captured changes is encoded as one batch, sent to the
 * bridge, and commits only if the bridge answers "prepared" or "committed"
 * for that very batch; anything else becomes an ERROR with a "YW" SQLSTATE (or
 * the target's own) that says what failed.  Before the batch goes out the xid
 * is made durable (the target's prepared transaction is named after it) and
 * the commit is made synchronous (the target commits on its outcome).  The
 * commit and abort callbacks must never raise an ERROR (after the commit
 * record it would be a PANIC, during abort it recurses): they only tell the
 * bridge the outcome, best effort, and forget the transaction's changes.  Transactions without
 * captured changes cost one pointer test per callback.
 */
#include "postgres.h"

#include <limits.h>
#include <sys/un.h>
#ifdef DW_FAULT_INJECTION
#include <signal.h>
#endif

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bridge/hook/dw_hook_int.h"

PG_MODULE_MAGIC;

void _PG_init(void);

char *dw_guc_bridge = NULL;
char *dw_guc_token = NULL;
int dw_guc_commit_timeout_ms = 30000;
bool dw_guc_enabled = true;
char *dw_guc_origin = NULL;

/* The batch sent at pre-commit whose outcome the bridge is waiting for. */
static char outcome_batch_id[96];
static bool outcome_due = false;

/* The database's name never changes while we are connected to it. */
static char *database_name = NULL;

#ifdef DW_FAULT_INJECTION
/*
 * Fault injection (test builds only; -Dfault_injection=false removes it):
 * dualwrite.fault names a point at which this backend SIGKILLs itself, as a
 * crash of the source backend would, for the crash tests of the failure
 * matrix (DESIGN.md section 2):
 *   crash-after-verdict   at pre-commit, once the bridge answered "prepared"
 *                         or "committed", before the commit record;
 *   crash-before-outcome  in the commit callback, after the commit record,
 *                         before the outcome is sent;
 *   crash-after-outcome   in the commit callback, right after the outcome
 *                         "committed" was sent.
 */
static char *dw_guc_fault = NULL;

static bool
check_fault(char **newval, void **extra, GucSource source)
{
    (void) extra;
    (void) source;
    if (!*newval || !(*newval)[0] || strcmp(*newval, "crash-after-verdict") == 0 ||
        strcmp(*newval, "crash-before-outcome") == 0 || strcmp(*newval, "crash-after-outcome") == 0)
        return true;
    GUC_check_errdetail("Valid faults: crash-after-verdict, crash-before-outcome, "
                        "crash-after-outcome.");
    return false;
}

static void
fault_point(const char *name)
{
    if (!dw_guc_fault || strcmp(dw_guc_fault, name) != 0)
        return;
    elog(LOG, "dualwrite: fault \"%s\": killing this backend", name);
    for (;;)
        kill(MyProcPid, SIGKILL);
}
#endif

/* ---- settings ---- */

static bool
check_bridge(char **newval, void **extra, GucSource source)
{
    const char *v = *newval;
    char host[256], port[16];

    (void) extra;
    (void) source;
    if (!v || !v[0])
        return true; /* reported at the first commit that needs it */
    if (v[0] == '/') {
        if (strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
            GUC_check_errdetail("A Unix socket path has at most %d bytes.",
                                (int) sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
            return false;
        }
        return true;
    }
    if (!dw_client_parse_address(v, host, sizeof(host), port, sizeof(port))) {
        GUC_check_errdetail("Use an absolute Unix socket path, or host:port.");
        return false;
    }
    return true;
}

static bool
check_token(char **newval, void **extra, GucSource source)
{
    (void) extra;
    (void) source;
    for (const unsigned char *p = (const unsigned char *) *newval; p && *p; p++) {
        if (*p < 0x21 || *p > 0x7e) {
            GUC_check_errdetail("A bearer token consists of visible ASCII characters only.");
            return false;
        }
    }
    return true;
}

static void
define_settings(void)
{
    DefineCustomStringVariable(
        "dualwrite.bridge", "Address of the dualwrite bridge.",
        "An absolute Unix socket path, or host:port for TCP.", &dw_guc_bridge,
        "/run/dualwrite/bridge.sock", PGC_SUSET, 0, check_bridge, NULL, NULL);
    DefineCustomStringVariable(
        "dualwrite.token", "Bearer token presented to the bridge over TCP.",
        "Only superusers can read it.", &dw_guc_token, "", PGC_SUSET,
        GUC_SUPERUSER_ONLY, check_token, NULL, NULL);
    DefineCustomIntVariable(
        "dualwrite.commit_timeout", "How long COMMIT waits for the bridge's verdict.",
        "Past it the transaction is rolled back.", &dw_guc_commit_timeout_ms, 30000, 1,
        INT_MAX, PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
    DefineCustomBoolVariable(
        "dualwrite.enabled", "Capture the changes of replicated tables.",
        "When off, changes are neither captured nor sent, and TRUNCATE is allowed.",
        &dw_guc_enabled, true, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomStringVariable(
        "dualwrite.origin", "Origin of this session's changes.",
        "When set, the session's changes are not captured (the bridge sets it on the "
        "sessions that apply changes).",
        &dw_guc_origin, "", PGC_SUSET, 0, NULL, NULL, NULL);
#ifdef DW_FAULT_INJECTION
    DefineCustomStringVariable(
        "dualwrite.fault", "Fault to inject (test builds only).",
        "crash-after-verdict, crash-before-outcome or crash-after-outcome: the backend kills "
        "itself there.",
        &dw_guc_fault, "", PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_SUPERUSER_ONLY, check_fault, NULL,
        NULL);
#endif
    MarkGUCPrefixReserved("dualwrite");
}

/* ---- reporting the verdict ---- */

/* Text from the bridge (UTF-8) as it can go into a message in this database. */
static const char *
bridge_text(const char *s)
{
    char *copy;

    if (!s || GetDatabaseEncoding() == PG_UTF8)
        return s;
    copy = pstrdup(s);
    for (char *p = copy; *p; p++) {
        if ((unsigned char) *p >= 0x80)
            *p = '?';
    }
    return copy;
}

/* The first bytes of a body that is not a verdict, printable. */
static const char *
body_excerpt(const struct dw_bridge_reply *r)
{
    size_t n = Min(r->body_len, 200);
    char *s = palloc(n + 4);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) r->body[i];

        s[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char) c;
    }
    strcpy(s + n, r->body_len > n ? "..." : "");
    return s;
}

static bool
valid_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return false;
    for (int i = 0; i < 5; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    }
    /* a target's "success" or "warning" code would not abort anything */
    return !(s[0] == '0' && (s[1] == '0' || s[1] == '1' || s[1] == '2'));
}

/* "message" or "message\ndetail" from the verdict */
static const char *
verdict_detail(const struct dw_verdict *v)
{
    const char *m = bridge_text(v->message);
    const char *d = bridge_text(v->detail);

    if (m && d)
        return psprintf("%s\n%s", m, d);
    if (m)
        return m;
    if (d)
        return d;
    return "The bridge gave no reason.";
}

static const char *
verdict_context(const char *id, const struct dw_verdict *v)
{
    StringInfoData s;

    initStringInfo(&s);
    appendStringInfo(&s, "dualwrite batch \"%s\"", id);
    if (v->map)
        appendStringInfo(&s, ", table map \"%s\"", bridge_text(v->map));
    if (v->change >= 0)
        appendStringInfo(&s, ", change %ld", v->change);
    if (v->stage)
        appendStringInfo(&s, ", stage \"%s\"", bridge_text(v->stage));
    return s.data;
}

static void
protocol_error(const char *id, const char *msg, const char *detail) pg_attribute_noreturn();

static void
protocol_error(const char *id, const char *msg, const char *detail)
{
    dw_client_disconnect();
    ereport(ERROR,
            (errcode(ERRCODE_DW_PROTOCOL), errmsg("dualwrite: %s", msg),
             errdetail_internal("%s. The state of batch \"%s\" is unknown; the bridge settles it "
                                "from this server's commit log.",
                                detail, id),
             errhint("The transaction was rolled back; retry it.")));
}

/* A reply whose body is not a verdict. */
static void
report_not_verdict(const char *id, const struct dw_bridge_reply *r) pg_attribute_noreturn();

static void
report_not_verdict(const char *id, const struct dw_bridge_reply *r)
{
    int st = r->http_status;

    if (st == 401 || st == 403)
        ereport(ERROR,
                (errcode(ERRCODE_DW_BRIDGE_UNREACHABLE),
                 errmsg("dualwrite: the bridge at \"%s\" refused the credentials",
                        dw_client_address()),
                 errdetail_internal("HTTP %d: %s", st, body_excerpt(r)),
                 errhint("Set dualwrite.token to the bridge's token.")));
    if (st == 413)
        ereport(ERROR,
                (errcode(ERRCODE_DW_PREVALIDATION),
                 errmsg("dualwrite: the bridge refused the batch as too large"),
                 errdetail_internal("HTTP 413: %s", body_excerpt(r)),
                 errhint("Split the work into smaller transactions.")));
    if (st == 400)
        protocol_error(id, "the bridge could not read the batch",
                       psprintf("HTTP 400: %s", body_excerpt(r)));
    if (st == 200 || st == 409 || st == 422 || st == 429 || st == 503)
        protocol_error(id, "malformed verdict from the bridge",
                       psprintf("HTTP %d, %s", st, r->decode_error));
    protocol_error(id, "unexpected reply from the bridge",
                   psprintf("HTTP %d: %s", st, body_excerpt(r)));
}

/* Returns when the bridge accepted the batch; raises the right ERROR otherwise. */
static void
check_reply(const char *id, const struct dw_bridge_reply *r)
{
    const struct dw_verdict *v = r->verdict;
    int64 retry;

    if (!v)
        report_not_verdict(id, r);
    /*
     * Only an acceptance must name our batch.  A refusal of the request itself
     * (the bridge is stopping, say) names none, and fails the commit with the
     * bridge's own reason like any other refusal.
     */
    if (v->id ? strcmp(v->id, id) != 0
              : v->status == DW_VERDICT_PREPARED || v->status == DW_VERDICT_COMMITTED)
        protocol_error(id, "the bridge answered for another batch",
                       psprintf("Expected a verdict for batch \"%s\", got one for \"%s\"", id,
                                v->id ? bridge_text(v->id) : "(none)"));

    switch (v->status) {
    case DW_VERDICT_PREPARED:
    case DW_VERDICT_COMMITTED:
        if (r->http_status != 200)
            protocol_error(id, "contradictory verdict from the bridge",
                           psprintf("HTTP %d with status \"%s\"", r->http_status,
                                    dw_verdict_status_name(v->status)));
        return;
    case DW_VERDICT_REJECTED:
        if (r->http_status == 422 || (v->stage && strcmp(v->stage, "pre-validation") == 0)) {
            ereport(ERROR,
                    (errcode(ERRCODE_DW_PREVALIDATION),
                     v->map ? errmsg("dualwrite: the transaction breaks a rule of table map \"%s\"",
                                     bridge_text(v->map))
                            : errmsg("dualwrite: the bridge rejected the transaction before it "
                                     "reached the target"),
                     errdetail_internal("%s", verdict_detail(v)),
                     v->hint ? errhint("%s", bridge_text(v->hint)) : 0,
                     errcontext("%s", verdict_context(id, v))));
        }
        ereport(ERROR,
                (valid_sqlstate(v->target_sqlstate)
                     ? errcode(MAKE_SQLSTATE(v->target_sqlstate[0], v->target_sqlstate[1],
                                             v->target_sqlstate[2], v->target_sqlstate[3],
                                             v->target_sqlstate[4]))
                     : errcode(ERRCODE_DW_TARGET_REJECTED),
                 errmsg("dualwrite: target rejected the transaction"),
                 errdetail_internal("%s", verdict_detail(v)),
                 v->hint ? errhint("%s", bridge_text(v->hint)) : 0,
                 errcontext("%s", verdict_context(id, v))));
        break;
    case DW_VERDICT_THROTTLED:
        retry = v->retry_after_s >= 0 ? v->retry_after_s : r->retry_after_s;
        ereport(ERROR,
                (errcode(ERRCODE_DW_THROTTLED),
                 errmsg("dualwrite: the bridge throttled the transaction"),
                 errdetail_internal("%s", verdict_detail(v)),
                 retry >= 0 ? errhint("Retry in " INT64_FORMAT " seconds.", retry)
                            : errhint("Retry later."),
                 errcontext("%s", verdict_context(id, v))));
        break;
    case DW_VERDICT_UNAVAILABLE:
        /* the bridge refuses new batches while it drains for a shutdown; the target is fine */
        if (v->stage && strcmp(v->stage, "shutdown") == 0)
            ereport(ERROR,
                    (errcode(ERRCODE_DW_TARGET_UNAVAILABLE),
                     errmsg("dualwrite: the bridge is shutting down"),
                     errdetail_internal("%s", verdict_detail(v)),
                     v->hint ? errhint("%s", bridge_text(v->hint))
                             : errhint("Retry the transaction when the bridge is back."),
                     errcontext("%s", verdict_context(id, v))));
        ereport(ERROR,
                (errcode(ERRCODE_DW_TARGET_UNAVAILABLE),
                 errmsg("dualwrite: the target is unavailable"),
                 errdetail_internal("%s", verdict_detail(v)),
                 v->hint ? errhint("%s", bridge_text(v->hint))
                         : errhint("Retry when the target is back; the bridge's /v1/health shows "
                                   "its state."),
                 errcontext("%s", verdict_context(id, v))));
        break;
    }
    protocol_error(id, "unknown verdict from the bridge", "The verdict's status is unknown");
}

/* ---- pre-commit ---- */

static void
pre_commit(void)
{
    TimestampTz start = GetCurrentTimestamp();
    TimestampTz deadline = TimestampTzPlusMilliseconds(start, (int64) dw_guc_commit_timeout_ms);
    char sysid[32], xid[32], id[sizeof(outcome_batch_id)];
    struct dw_bridge_reply reply;
    struct dw_buf *b;
    long left;

    if (dw_capture_count() == 0)
        return; /* every change was in rolled-back savepoints */

    snprintf(sysid, sizeof(sysid), UINT64_FORMAT, GetSystemIdentifier());
    snprintf(xid, sizeof(xid), UINT64_FORMAT,
             U64FromFullTransactionId(GetTopFullTransactionId()));
    snprintf(id, sizeof(id), "%s:%u:%s", sysid, MyDatabaseId, xid);
    if (!database_name) {
        char *name = get_database_name(MyDatabaseId);

        database_name = MemoryContextStrdup(
            TopMemoryContext, pg_server_to_any(name ? name : "", strlen(name ? name : ""), PG_UTF8));
    }

    b = dw_client_batch_buffer();
    left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    dw_capture_encode(b, id, sysid, database_name, xid, (int64) left);
    if (dw_buf_failed(b))
        ereport(ERROR,
                (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
                 errdetail("dualwrite could not encode a batch of %zu changes.",
                           dw_capture_count())));
    if (b->len > DW_WIRE_MAX_BATCH_BYTES)
        ereport(ERROR,
                (errcode(ERRCODE_DW_PREVALIDATION),
                 errmsg("dualwrite: transaction is too large to replicate"),
                 errdetail("Its batch of %zu changes takes %zu bytes; the bridge accepts at most "
                           "%u.",
                           dw_capture_count(), b->len, (unsigned) DW_WIRE_MAX_BATCH_BYTES),
                 errhint("Split the work into smaller transactions.")));

    /*
     * Before the target prepares anything under our xid, make the xid durable:
     * an xid none of whose WAL reached the disk is handed out again after a
     * crash restart, and the resolver would judge this batch by another
     * transaction's outcome.  The message carries the xid whatever the tables
     * (unlogged ones write no WAL).  And the outcome "committed" lets the
     * target commit, so our commit record must be on disk before it goes out,
     * whatever synchronous_commit says.
     */
    XLogFlush(LogLogicalMessage("dualwrite", id, strlen(id), true));
    ForceSyncCommit();

    dw_client_post_batch(id, deadline, &reply);
    check_reply(id, &reply);

    /* accepted: from now on the bridge waits for the outcome */
    strlcpy(outcome_batch_id, id, sizeof(outcome_batch_id));
    outcome_due = true;
#ifdef DW_FAULT_INJECTION
    fault_point("crash-after-verdict");
#endif
}

/* ---- callbacks ---- */

static void
xact_callback(XactEvent event, void *arg)
{
    (void) arg;
    switch (event) {
    case XACT_EVENT_PRE_COMMIT:
        if (dw_capture_current == NULL)
            return;
        pre_commit();
        break;
    case XACT_EVENT_PRE_PREPARE:
        if (dw_capture_count() > 0)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("dualwrite: cannot PREPARE a transaction that changed tables "
                            "replicated by dualwrite"),
                     errdetail_plural("The transaction holds %zu captured change.",
                                      "The transaction holds %zu captured changes.",
                                      (unsigned long) dw_capture_count(), dw_capture_count()),
                     errhint("Use COMMIT; dualwrite makes the target's side two-phase itself.")));
        break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_ABORT:
        /* never an ERROR from here on */
        if (outcome_due) {
#ifdef DW_FAULT_INJECTION
            if (event == XACT_EVENT_COMMIT)
                fault_point("crash-before-outcome");
#endif
            outcome_due = false;
            dw_client_send_outcome(outcome_batch_id, event == XACT_EVENT_COMMIT);
#ifdef DW_FAULT_INJECTION
            if (event == XACT_EVENT_COMMIT)
                fault_point("crash-after-outcome");
#endif
        }
        dw_capture_reset();
        break;
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
        outcome_due = false;
        dw_capture_reset();
        break;
    case XACT_EVENT_PARALLEL_PRE_COMMIT:
        break;
    }
}

static void
subxact_callback(SubXactEvent event, SubTransactionId my_subid, SubTransactionId parent_subid,
                 void *arg)
{
    (void) arg;
    if (dw_capture_current == NULL)
        return;
    dw_capture_subxact(event, my_subid, parent_subid);
}

void
_PG_init(void)
{
    define_settings();
    RegisterXactCallback(xact_callback, NULL);
    RegisterSubXactCallback(subxact_callback, NULL);
    dw_truncate_init();
}
