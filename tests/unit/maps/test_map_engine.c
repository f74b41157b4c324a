/*
 * Unit tests of the mapping engine (DESIGN.md section 5): every filter
 * transition, no-op updates, key changes, value maps (hit, miss, default,
 * null), const, required, null keys, unmapped tables, connectors, the order
 * of operations across maps, and composite keys.  Batches are built directly
 * as struct dw_batch values.
 */
#include "tests/unit/maps/map_test_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END ((const char *) NULL)

static struct dw_arena arena;
static struct dw_mapset *set_one;    /* everything to connector "t" */
static struct dw_mapset *set_two;    /* customers to "crm", orders to "wms" */

static const char *const customers_map =
    "{'map': 'customers',"
    " 'source': {'table': 'public.customers', 'key': ['id']},"
    " 'target': {'connector': 't', 'table': 'customers', 'key': ['id']},"
    " 'filter': {'column': 'company', 'in': ['usmf', 'usrt']},"
    " 'fields': ["
    "   {'source': 'id', 'target': 'id'},"
    "   {'source': 'name', 'target': 'name', 'required': true},"
    "   {'source': 'status', 'target': 'state', 'values': {'active': '0', 'blocked': '1', 'gone': null},"
    "    'default': '9'},"
    "   {'source': 'rating', 'target': 'rating', 'required': true, 'values': {'a': 'A', 'z': null}, 'default': 'C'},"
    "   {'target': 'origin_system', 'const': 'erp'},"
    "   {'target': 'note', 'const': null}]}";

static const char *const orders_map =
    "{'map': 'orders',"
    " 'source': {'table': 'public.orders', 'key': ['id']},"
    " 'target': {'connector': 't', 'table': 'orders', 'key': ['id']},"
    " 'fields': ["
    "   {'source': 'customer_id', 'target': 'customer_id', 'required': true},"
    "   {'source': 'id', 'target': 'id'},"
    "   {'source': 'status', 'target': 'status', 'values': {'draft': 'open', 'shipped': 'closed'}},"
    "   {'source': 'total', 'target': 'total'}],"
    " 'depends_on': ['customers']}";

static const char *const orders_audit_map =
    "{'map': 'orders_audit',"
    " 'source': {'table': 'orders', 'key': ['id']},"
    " 'target': {'connector': 't', 'table': 'order_audit', 'key': ['order_id']},"
    " 'fields': [{'source': 'id', 'target': 'order_id'}, {'source': 'status', 'target': 'status'}]}";

static const char *const lines_map =
    "{'map': 'order_lines',"
    " 'source': {'table': 'public.order_lines', 'key': ['order_id', 'line']},"
    " 'target': {'connector': 't', 'table': 'order_lines', 'key': ['order_id', 'line_no']},"
    " 'filter': {'column': 'kind', 'in': ['item', null]},"
    " 'fields': ["
    "   {'source': 'qty', 'target': 'qty', 'required': true},"
    "   {'source': 'line', 'target': 'line_no'},"
    "   {'source': 'order_id', 'target': 'order_id'}],"
    " 'depends_on': ['orders']}";

static struct dw_mapset *load_set(const char *const *texts, size_t n, const char *const *conn_from,
                                  const char *const *conn_to)
{
    char *dir = tu_subdir();
    const char *paths[] = {dir};
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL;

    for (size_t i = 0; i < n; i++) {
        char name[32], *text = tu_strdup(texts[i]), *p;

        if (conn_from) {
            /* swap the connector name in this map's text */
            char *at = strstr(text, conn_from[i]);
            size_t fl = strlen(conn_from[i]), tl = strlen(conn_to[i]);
            char *nt = tu_malloc(strlen(text) + tl + 1);

            memcpy(nt, text, (size_t) (at - text));
            memcpy(nt + (at - text), conn_to[i], tl);
            strcpy(nt + (at - text) + tl, at + fl);
            free(text);
            text = nt;
        }
        snprintf(name, sizeof(name), "m%zu.json", i);
        p = tu_write(dir, name, text);
        free(p);
        free(text);
    }
    dw_error_clear(&err);
    if (dw_mapset_load(paths, 1, &set, &errors, &err) != DW_OK) {
        fprintf(stderr, "cannot load test maps:\n%s", errors ? errors : err.message);
        exit(1);
    }
    free(dir);
    return set;
}

static void setup_sets(void)
{
    const char *const all[] = {customers_map, orders_map, orders_audit_map, lines_map};
    const char *const two[] = {customers_map, orders_map};
    const char *const from[] = {"'connector': 't'", "'connector': 't'"};
    const char *const to[] = {"'connector': 'crm'", "'connector': 'wms'"};

    set_one = load_set(all, 4, NULL, NULL);
    set_two = load_set(two, 2, from, to);
}

/* ---- building batches ---- */

/* A row from (name, value) pairs ending with END; values may be NULL (SQL null). */
static struct dw_row row(const char *first, ...)
{
    struct dw_row r = {0};
    const char *names[64], *values[64];
    const char *name = first;
    va_list ap;

    va_start(ap, first);
    while (name) {
        names[r.ncols] = name;
        values[r.ncols++] = va_arg(ap, const char *);
        name = va_arg(ap, const char *);
    }
    va_end(ap);
    r.names = dw_arena_alloc(&arena, r.ncols * sizeof(*r.names) + 1);
    r.values = dw_arena_alloc(&arena, r.ncols * sizeof(*r.values) + 1);
    memcpy(r.names, names, r.ncols * sizeof(*r.names));
    memcpy(r.values, values, r.ncols * sizeof(*r.values));
    return r;
}

static struct dw_change ins(const char *table, struct dw_row n)
{
    return (struct dw_change) {.table = table, .op = DW_CHANGE_INSERT, .new_row = n};
}

static struct dw_change upd(const char *table, struct dw_row o, struct dw_row n)
{
    return (struct dw_change) {.table = table, .op = DW_CHANGE_UPDATE, .old_row = o, .new_row = n};
}

static struct dw_change del(const char *table, struct dw_row o)
{
    return (struct dw_change) {.table = table, .op = DW_CHANGE_DELETE, .old_row = o};
}

static dw_errcode run(struct dw_mapset *set, struct dw_change *changes, size_t n, struct dw_oplist *out,
                      struct dw_error *err)
{
    struct dw_batch b = {.id = "1:2:3", .source_system = "1", .source_database = "erp", .source_xid = "3",
                         .nchanges = n, .changes = changes};

    dw_error_clear(err);
    return dw_map_apply(set, &b, &arena, out, err);
}

/* sizeof does not evaluate its operand, so the changes are built once */
#define RUN(set, out, err, ...)                                                                      \
    run(set, (struct dw_change[]) {__VA_ARGS__},                                                     \
        sizeof((struct dw_change[]) {__VA_ARGS__}) / sizeof(struct dw_change), out, err)

/*
 * op has this kind, table, map, change index and exactly these (column,
 * value) pairs in this order, ending with END.  Use NULL for an SQL null.
 */
static bool op_is(const struct dw_target_op *op, dw_op_kind kind, const char *table, const char *map,
                  size_t change, size_t nkey, ...)
{
    va_list ap;
    size_t i = 0;
    bool ok = op->kind == kind && strcmp(op->table, table) == 0 && strcmp(op->map, map) == 0 &&
              op->change == change && op->nkey == nkey;
    const char *col;

    va_start(ap, nkey);
    while ((col = va_arg(ap, const char *))) {
        const char *val = va_arg(ap, const char *);

        if (i >= op->ncolumns || strcmp(op->columns[i], col) != 0 ||
            (val == NULL) != (op->values[i] == NULL) || (val && strcmp(val, op->values[i]) != 0))
            ok = false;
        i++;
    }
    va_end(ap);
    if (i != op->ncolumns)
        ok = false;
    if (!ok) {
        fprintf(stderr, "\nunexpected op: %s %s map %s change %zu nkey %zu:",
                op->kind == DW_OP_UPSERT ? "upsert" : "delete", op->table, op->map, op->change, op->nkey);
        for (size_t k = 0; k < op->ncolumns; k++)
            fprintf(stderr, " %s=%s", op->columns[k], op->values[k] ? op->values[k] : "NULL");
        fprintf(stderr, "\n");
    }
    return ok;
}

#define CUST "public.customers"
#define ORD "public.orders"
#define LINES "public.order_lines"

/* A customer row image. */
#define C(id, company, name, status, rating) \
    row("id", id, "company", company, "name", name, "status", status, "rating", rating, "extra", "x", END)
#define C2(id, company, name, status, rating, extra) \
    row("id", id, "company", company, "name", name, "status", status, "rating", rating, "extra", extra, END)

#define CUST_UPSERT(change, id, company, name, state, rating)                                                    \
    op_is(&out.ops[0], DW_OP_UPSERT, "customers", "customers", change, 1, "id", id, "name", name, "state", state, \
          "rating", rating, "origin_system", "erp", "note", NULL, END)

/* ---- inserts and deletes ---- */

static void test_insert_upsert_full_row(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err, ins(CUST, C("17", "usmf", "Ann", "blocked", "a"))), DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "17", "usmf", "Ann", "1", "A"));
    CU_ASSERT_STRING_EQUAL(out.connector, "t");
    CU_ASSERT_EQUAL(out.fail_change, -1);
    CU_ASSERT_PTR_NULL(out.fail_map);
}

static void test_insert_filter(void)
{
    struct dw_oplist out;
    struct dw_error err;

    /* out of the filter: nothing, not even the checks */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("17", "dat", NULL, "bogus", NULL))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_PTR_NULL(out.connector);
    /* a null filter value is out unless the filter lists null */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("17", NULL, "Ann", "active", "a"))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        ins(LINES, row("order_id", "1", "line", "2", "qty", "3", "kind", NULL, END))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 1);
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        ins(LINES, row("order_id", "1", "line", "2", "qty", "3", "kind", "text", END))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
}

static void test_delete(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err, del(CUST, C("17", "usrt", "Ann", "active", "a"))), DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "customers", "customers", 0, 1, "id", "17", END));
    /* deletes check nothing but the key: a required null in the old row does not matter */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, del(CUST, C("17", "usrt", NULL, "bogus", NULL))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 1);
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, del(CUST, C("17", "dat", "Ann", "active", "a"))), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
}

/* ---- updates: filter transitions, no-op, key change ---- */

static void test_update_in_in(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "usmf", "Ann", "active", "a"), C("17", "usrt", "Anne", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "17", "usrt", "Anne", "0", "A"));
}

static void test_update_out_in(void)
{
    struct dw_oplist out;
    struct dw_error err;

    /* entering the filter upserts even when no mapped column changed */
    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "dat", "Ann", "active", "a"), C("17", "usmf", "Ann", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "17", "usmf", "Ann", "0", "A"));
}

static void test_update_in_out(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "usmf", "Ann", "active", "a"), C("17", "dat", NULL, "bogus", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "customers", "customers", 0, 1, "id", "17", END));
}

static void test_update_out_out(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(CUST, C("17", "dat", "Ann", "active", "a"), C("18", NULL, NULL, "bogus", NULL))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
}

static void test_update_no_mapped_change(void)
{
    struct dw_oplist out;
    struct dw_error err;

    /* only an unmapped column changed */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(CUST, C2("17", "usmf", "Ann", "active", "a", "x"),
                            C2("17", "usmf", "Ann", "active", "a", "y"))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    /* the filter column changed but stayed in, and it is not a mapped field */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(CUST, C("17", "usmf", "Ann", "active", "a"), C("17", "usrt", "Ann", "active", "a"))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    /* null to null is no change; null to a value is */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(ORD, row("id", "1", "customer_id", "5", "status", "draft", "total", NULL, END),
                            row("id", "1", "customer_id", "5", "status", "draft", "total", NULL, END))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(ORD, row("id", "1", "customer_id", "5", "status", "draft", "total", NULL, END),
                            row("id", "1", "customer_id", "5", "status", "draft", "total", "", END))),
                    DW_OK);
    /* orders and orders_audit: only orders reads total */
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_STRING_EQUAL(out.ops[0].map, "orders");
    /* a value-mapped column compares source values, even if both map to the same target value */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(CUST, C("17", "usmf", "Ann", "x1", "a"), C("17", "usmf", "Ann", "x2", "a"))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 1);
}

static void test_key_change(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "usmf", "Ann", "active", "a"), C("18", "usmf", "Ann", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 2);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "customers", "customers", 0, 1, "id", "17", END));
    CU_ASSERT_TRUE(op_is(&out.ops[1], DW_OP_UPSERT, "customers", "customers", 0, 1, "id", "18", "name", "Ann",
                         "state", "0", "rating", "A", "origin_system", "erp", "note", NULL, END));
    /* key change while leaving the filter: only the delete of the old key */
    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "usmf", "Ann", "active", "a"), C("18", "dat", "Ann", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "customers", "customers", 0, 1, "id", "17", END));
    /* key change while entering: only the upsert of the new key */
    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(CUST, C("17", "dat", "Ann", "active", "a"), C("18", "usrt", "Ann", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_EQUAL(out.ops[0].kind, DW_OP_UPSERT);
    CU_ASSERT_STRING_EQUAL(out.ops[0].values[0], "18");
}

/* ---- values, const, required, keys ---- */

static void test_value_map(void)
{
    struct dw_oplist out;
    struct dw_error err;

    /* hit; hit to null; miss with default; null passes unmapped */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("1", "usmf", "A", "gone", "a"))), DW_OK);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "1", "usmf", "A", NULL, "A"));
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("1", "usmf", "A", "archived", "a"))), DW_OK);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "1", "usmf", "A", "9", "A"));
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("1", "usmf", "A", NULL, "a"))), DW_OK);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "1", "usmf", "A", NULL, "A"));
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("1", "usmf", "A", "", "q"))), DW_OK);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "1", "usmf", "A", "9", "C"));
}

static void test_value_map_miss(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        ins(ORD, row("id", "16", "customer_id", "5", "status", "draft", "total", "1", END)),
                        ins(ORD, row("id", "17", "customer_id", "5", "status", "archived", "total", "1", END))),
                    DW_ERR_MAP);
    CU_ASSERT_EQUAL(err.code, DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "table map \"orders\" field \"status\": value \"archived\" has no entry in \"values\" and "
                           "no \"default\"");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 1, source key (id)=(17)");
    CU_ASSERT_STRING_EQUAL(out.fail_map, "orders");
    CU_ASSERT_EQUAL(out.fail_change, 1);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_PTR_NULL(out.connector);
}

static void test_value_escaped(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        ins(ORD, row("id", "a\"b\n", "customer_id", "5", "status", "x\ny", "total", "1", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "table map \"orders\" field \"status\": value \"x\\ny\" has no entry in \"values\" and "
                           "no \"default\"");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(a\\\"b\\n)");
}

static void test_required_null(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("3", "usmf", NULL, "active", "a"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"customers\" field \"name\": required value is null");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(3)");
    CU_ASSERT_STRING_EQUAL(out.fail_map, "customers");
    CU_ASSERT_EQUAL(out.fail_change, 0);
    /* required checks the mapped value: a value mapped to null is rejected too */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("3", "usmf", "A", "active", "z"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "table map \"customers\" field \"rating\": value \"z\" maps to null, "
                           "but the field is required");
    /* and a null source with values is null: required rejects it */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("3", "usmf", "A", "active", NULL))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"customers\" field \"rating\": required value is null");
}

static void test_const(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err, ins(CUST, C("3", "usmf", "A", "active", "a"))), DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_STRING_EQUAL(out.ops[0].columns[4], "origin_system");
    CU_ASSERT_STRING_EQUAL(out.ops[0].values[4], "erp");
    CU_ASSERT_STRING_EQUAL(out.ops[0].columns[5], "note");
    CU_ASSERT_PTR_NULL(out.ops[0].values[5]);
}

static void test_null_key(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C(NULL, "usmf", "A", "active", "a"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"customers\": source key column \"id\" is null");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(null)");
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        del(LINES, row("order_id", "1", "line", NULL, "qty", "3", "kind", "item", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"order_lines\": source key column \"line\" is null");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (order_id, line)=(1, null)");
}

static void test_missing_column(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, row("id", "1", "company", "usmf", "name", "A", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"customers\": column \"status\" is missing from the new row image");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(1)");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.hint, "dwctl hooks install"));
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        upd(CUST, row("id", "1", "name", "A", END), C("1", "usmf", "A", "active", "a"))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "table map \"customers\": column \"company\" is missing from the old row image");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(1)");
}

static void test_unmapped_table(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins(CUST, C("1", "usmf", "A", "active", "a")),
                        ins("public.invoices", row("id", "1", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "no table map covers table \"public.invoices\"");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 1");
    CU_ASSERT_PTR_NULL(out.fail_map);
    CU_ASSERT_EQUAL(out.fail_change, 1);
    /* names are exact: an unqualified table in a batch is not normalized */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err, ins("customers", C("1", "usmf", "A", "active", "a"))), DW_ERR_MAP);
}

/* ---- connectors, order, composite keys ---- */

static void test_two_connectors(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_two, &out, &err, ins(CUST, C("1", "usmf", "A", "active", "a"))), DW_OK);
    CU_ASSERT_STRING_EQUAL(out.connector, "crm");
    CU_ASSERT_EQUAL_FATAL(RUN(set_two, &out, &err,
                              ins(ORD, row("id", "1", "customer_id", "5", "status", "draft", "total", "1", END))),
                          DW_OK);
    CU_ASSERT_STRING_EQUAL(out.connector, "wms");
    CU_ASSERT_STRING_EQUAL(out.ops[0].connector, "wms");
    CU_ASSERT_EQUAL(RUN(set_two, &out, &err,
                        ins(ORD, row("id", "9", "customer_id", "5", "status", "draft", "total", "1", END)),
                        ins(CUST, C("1", "dat", "A", "active", "a")),
                        ins(CUST, C("2", "usmf", "B", "active", "a"))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "batch writes to more than one connector: \"wms\", \"crm\"");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 2, source key (id)=(2)");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.hint, "multi-target"));
    CU_ASSERT_STRING_EQUAL(out.fail_map, "customers");
    CU_ASSERT_EQUAL(out.fail_change, 2);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_PTR_NULL(out.connector);
}

static void test_order_across_maps(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              ins(LINES, row("order_id", "1", "line", "1", "qty", "2", "kind", "item", END)),
                              ins(ORD, row("id", "1", "customer_id", "5", "status", "draft", "total", "1", END)),
                              del(CUST, C("5", "usmf", "A", "active", "a"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 4);
    /* source change order first; within a change, maps in set order (orders before orders_audit) */
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_UPSERT, "order_lines", "order_lines", 0, 2, "order_id", "1", "line_no",
                         "1", "qty", "2", END));
    CU_ASSERT_TRUE(op_is(&out.ops[1], DW_OP_UPSERT, "orders", "orders", 1, 1, "id", "1", "customer_id", "5", "status",
                         "open", "total", "1", END));
    CU_ASSERT_TRUE(op_is(&out.ops[2], DW_OP_UPSERT, "order_audit", "orders_audit", 1, 1, "order_id", "1", "status",
                         "draft", END));
    CU_ASSERT_TRUE(op_is(&out.ops[3], DW_OP_DELETE, "customers", "customers", 2, 1, "id", "5", END));
    CU_ASSERT_STRING_EQUAL(out.connector, "t");
}

static void test_composite_key(void)
{
    struct dw_oplist out;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              del(LINES, row("order_id", "7", "line", "3", "qty", "1", "kind", "item", END))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "order_lines", "order_lines", 0, 2, "order_id", "7", "line_no",
                         "3", END));
    /* the second key column changes: delete the old key, upsert the new one */
    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              upd(LINES, row("order_id", "7", "line", "3", "qty", "1", "kind", "item", END),
                                  row("order_id", "7", "line", "4", "qty", "1", "kind", "item", END))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 2);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_DELETE, "order_lines", "order_lines", 0, 2, "order_id", "7", "line_no",
                         "3", END));
    CU_ASSERT_TRUE(op_is(&out.ops[1], DW_OP_UPSERT, "order_lines", "order_lines", 0, 2, "order_id", "7", "line_no",
                         "4", "qty", "1", END));
    /* required in a composite-key map */
    CU_ASSERT_EQUAL(RUN(set_one, &out, &err,
                        ins(LINES, row("order_id", "7", "line", "5", "qty", NULL, "kind", "item", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"order_lines\" field \"qty\": required value is null");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (order_id, line)=(7, 5)");
}

static void test_column_order_in_row(void)
{
    struct dw_oplist out;
    struct dw_error err;

    /* columns in any order, with extra ones the maps do not read */
    CU_ASSERT_EQUAL_FATAL(RUN(set_one, &out, &err,
                              ins(CUST, row("zz", "1", "rating", "a", "status", "active", "name", "A", "company",
                                            "usmf", "id", "9", END))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(CUST_UPSERT(0, "9", "usmf", "A", "0", "A"));
}

static void test_empty_and_large_batch(void)
{
    struct dw_oplist out;
    struct dw_error err;
    size_t n = 50000;
    struct dw_change *ch = dw_arena_alloc(&arena, n * sizeof(*ch));
    char (*ids)[16] = tu_malloc(n * sizeof(*ids));

    CU_ASSERT_EQUAL(run(set_one, NULL, 0, &out, &err), DW_OK);
    CU_ASSERT_EQUAL(out.nops, 0);
    CU_ASSERT_PTR_NULL(out.connector);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%zu", i);
        if (i % 2)
            ch[i] = ins(ORD, row("id", ids[i], "customer_id", "5", "status", "draft", "total", "1", END));
        else
            ch[i] = upd(LINES, row("order_id", ids[i], "line", "1", "qty", "1", "kind", "item", END),
                        row("order_id", ids[i], "line", "1", "qty", "2", "kind", "item", END));
    }
    CU_ASSERT_EQUAL_FATAL(run(set_one, ch, n, &out, &err), DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, n / 2 * 3);
    CU_ASSERT_EQUAL(out.ops[out.nops - 1].change, n - 1);
    CU_ASSERT_STRING_EQUAL(out.ops[out.nops - 1].values[0], ids[n - 1]);
    free(ids);
}

/* ---- lookups: a reference to a parent, built from source columns ---- */

static const char *const odata_orders_map =
    "{'map': 'od_orders',"
    " 'source': {'table': 'public.od_orders', 'key': ['id']},"
    " 'target': {'connector': 'od', 'table': 'Orders', 'key': ['ID']},"
    " 'fields': ["
    "   {'source': 'id', 'target': 'ID'},"
    "   {'target': 'parent@odata.bind', 'lookup': {'entity_set': 'Accounts', 'key': {'account_no': 'customer_no'}}},"
    "   {'target': 'line@odata.bind', 'required': true,"
    "    'lookup': {'entity_set': 'Lines', 'key': {'order_ID': {'source': 'id', 'type': 'Edm.Int32'},"
    "                                            'line_code': 'code'}}},"
    "   {'target': 'thing@odata.bind',"
    "    'lookup': {'entity_set': 'Things', 'key': {'ID': {'source': 'thing', 'type': 'Edm.Guid'}}}},"
    "   {'target': 'amount@odata.bind',"
    "    'lookup': {'entity_set': 'Prices', 'key': {'amount': {'source': 'amount', 'type': 'Edm.Decimal'},"
    "                                             'cents': {'source': 'cents', 'type': 'Edm.Int64'}}}},"
    "   {'source': 'status', 'target': 'status'}]}";

#define OD "public.od_orders"
#define ODROW(id, cust, code, thing, amount, cents, status)                                                   \
    row("id", id, "customer_no", cust, "code", code, "thing", thing, "amount", amount, "cents", cents, "status", \
        status, END)

static void test_lookup_values(void)
{
    const char *const texts[] = {odata_orders_map};
    struct dw_mapset *set = load_set(texts, 1, NULL, NULL);
    struct dw_oplist out;
    struct dw_error err;
    const char **cols = NULL;
    size_t ncols = dw_mapset_source_columns(set, OD, &cols);

    /* the capture trigger must send the lookups' columns */
    CU_ASSERT_EQUAL(ncols, 7);
    free(cols);

    CU_ASSERT_EQUAL_FATAL(RUN(set, &out, &err,
                              ins(OD, ODROW("7", "A1", "L/1", "1B0E6F4E-3C2A-4D5E-9F10-A1B2C3D4E5F6", "-003.50",
                                            "+0042", "new"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 1);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_UPSERT, "Orders", "od_orders", 0, 1, "ID", "7",
                         "parent@odata.bind", "/Accounts(account_no='A1')",
                         "line@odata.bind", "/Lines(order_ID=7,line_code='L%2F1')",
                         "thing@odata.bind", "/Things(ID=1b0e6f4e-3c2a-4d5e-9f10-a1b2c3d4e5f6)",
                         "amount@odata.bind", "/Prices(amount=-3.50,cents=42)",
                         "status", "new", END));

    /* string keys: quotes doubled, everything but unreserved characters percent-encoded */
    CU_ASSERT_EQUAL_FATAL(RUN(set, &out, &err,
                              ins(OD, ODROW("8", "O'Brien / \xc3\xa9", "a''b", NULL, "0", "-0", "x"))),
                          DW_OK);
    CU_ASSERT_TRUE(op_is(&out.ops[0], DW_OP_UPSERT, "Orders", "od_orders", 0, 1, "ID", "8",
                         "parent@odata.bind", "/Accounts(account_no='O''Brien%20%2F%20%C3%A9')",
                         "line@odata.bind", "/Lines(order_ID=8,line_code='a''''b')",
                         "thing@odata.bind", NULL,     /* a null key value: no parent */
                         "amount@odata.bind", "/Prices(amount=0,cents=0)",
                         "status", "x", END));

    /* a change of a lookup's column alone is a change; a delete carries only the key */
    CU_ASSERT_EQUAL_FATAL(RUN(set, &out, &err,
                              upd(OD, ODROW("8", "A1", "c", NULL, "1", "1", "x"),
                                  ODROW("8", "A2", "c", NULL, "1", "1", "x")),
                              upd(OD, ODROW("8", "A2", "c", NULL, "1", "1", "x"),
                                  ODROW("8", "A2", "c", NULL, "1", "1", "x")),
                              del(OD, ODROW("8", "A2", "c", NULL, "1", "1", "x"))),
                          DW_OK);
    CU_ASSERT_EQUAL_FATAL(out.nops, 2);
    CU_ASSERT_STRING_EQUAL(out.ops[0].values[1], "/Accounts(account_no='A2')");
    CU_ASSERT_TRUE(op_is(&out.ops[1], DW_OP_DELETE, "Orders", "od_orders", 2, 1, "ID", "8", END));

    /* required: a null in any key column of the lookup rejects */
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, ODROW("9", "A1", NULL, NULL, "1", "1", "x"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"od_orders\" field \"line@odata.bind\": required lookup "
                                        "key column \"code\" is null");
    CU_ASSERT_STRING_EQUAL(err.detail, "change 0, source key (id)=(9)");
    CU_ASSERT_STRING_EQUAL(out.fail_map, "od_orders");

    /* a value the key type cannot hold */
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, ODROW("9", "A1", "c", "not-a-guid", "1", "1", "x"))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"od_orders\" field \"thing@odata.bind\": value "
                                        "\"not-a-guid\" is not a valid GUID for lookup key property \"ID\"");
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, ODROW("9", "A1", "c", NULL, "1.", "1", "x"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"od_orders\" field \"amount@odata.bind\": value \"1.\" "
                                        "is not a valid decimal for lookup key property \"amount\"");
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, ODROW("9", "A1", "c", NULL, "1", "1.5", "x"))), DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"od_orders\" field \"amount@odata.bind\": value \"1.5\" "
                                        "is not a valid integer for lookup key property \"cents\"");
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, ODROW("9", "A1", "c", NULL, "NaN", "1", "x"))), DW_ERR_MAP);

    /* a lookup column missing from the row image */
    CU_ASSERT_EQUAL(RUN(set, &out, &err, ins(OD, row("id", "9", "code", "c", "thing", NULL, "amount", "1",
                                                     "cents", "1", "status", "x", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message, "table map \"od_orders\": column \"customer_no\" is missing from the new "
                                        "row image");
    dw_mapset_free(set);
}

static void test_examples(void)
{
    /* the shipped examples map the batch of DESIGN.md section 4 */
    const char *src = getenv("DW_MAPS_EXAMPLES");
    const char *paths[1];
    struct dw_mapset *set = NULL;
    struct dw_oplist out;
    struct dw_error err;
    char *errors = NULL;

    if (!src)
        return;
    paths[0] = src;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(dw_mapset_load(paths, 1, &set, &errors, &err), DW_OK);
    CU_ASSERT_EQUAL(RUN(set, &out, &err,
                        ins(ORD, row("id", "17", "customer_id", "4", "status", "draft", "total", "12.50", END)),
                        upd(ORD, row("id", "17", "customer_id", "4", "status", "draft", "total", "12.50", END),
                            row("id", "17", "customer_id", "4", "status", "confirmed", "total", "12.50", END)),
                        del(LINES, row("order_id", "17", "line", "1", "item", "x", "qty", "2", "price", "1", END))),
                    DW_OK);
    CU_ASSERT_EQUAL(out.nops, 3);
    CU_ASSERT_EQUAL(RUN(set, &out, &err,
                        ins(ORD, row("id", "17", "customer_id", "4", "status", "archived", "total", "1", END))),
                    DW_ERR_MAP);
    CU_ASSERT_STRING_EQUAL(err.message,
                           "table map \"orders\" field \"status\": value \"archived\" has no entry in \"values\" and "
                           "no \"default\"");
    dw_mapset_free(set);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"insert: upsert with the full mapped row", test_insert_upsert_full_row},
        {"insert: only when the new row is in the filter", test_insert_filter},
        {"delete: by key, only when the old row was in", test_delete},
        {"update: in -> in upserts", test_update_in_in},
        {"update: out -> in upserts", test_update_out_in},
        {"update: in -> out deletes", test_update_in_out},
        {"update: out -> out does nothing", test_update_out_out},
        {"update: no mapped column changed", test_update_no_mapped_change},
        {"update: key change deletes the old key", test_key_change},
        {"value map: hit, null, default", test_value_map},
        {"value map: miss without default rejects", test_value_map_miss},
        {"messages escape values", test_value_escaped},
        {"required null rejects", test_required_null},
        {"const sets a target column", test_const},
        {"null key rejects", test_null_key},
        {"missing column rejects", test_missing_column},
        {"unmapped table rejects", test_unmapped_table},
        {"two connectors reject", test_two_connectors},
        {"order across maps and changes", test_order_across_maps},
        {"composite keys", test_composite_key},
        {"row columns in any order", test_column_order_in_row},
        {"empty and large batches", test_empty_and_large_batch},
        {"examples map the design's batch", test_examples},
        {"lookups: references, escaping, types, null, required", test_lookup_values},
    };
    int rc;

    if (argc > 1)
        setenv("DW_MAPS_EXAMPLES", argv[1], 1);
    dw_arena_init(&arena, 65536);
    setup_sets();
    rc = tu_run("map_engine", tests, sizeof(tests) / sizeof(tests[0]));
    dw_mapset_free(set_one);
    dw_mapset_free(set_two);
    dw_arena_cleanup(&arena);
    return rc;
}
