/*
 * Unit tests of the table-map loader and validator: one test per rule, each
 * asserting the exact error line ("file: /json/path: message"), plus folder
 * loads with several bad files, the dependency order and the lookups.
 *
 * JSON in this file uses ' for " (tu_write converts) to stay readable.
 */
#include "tests/unit/maps/map_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC "'source': {'table': 'orders', 'key': ['id']}"
#define TGT "'target': {'connector': 'pg', 'table': 'orders', 'key': ['id']}"
#define FIELDS "'fields': [{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': 'status'}]"
/* A valid map with extra top-level members appended (each starting with ", "). */
#define MAP(extra) "{'map': 'orders', " SRC ", " TGT ", " FIELDS extra "}"
/* A map with the fields given. */
#define MAPF(fields) "{'map': 'orders', " SRC ", " TGT ", 'fields': " fields "}"

/*
 * Load json as a single file; true when the errors contain the line
 * "<file><rest>" and, if nlines > 0, exactly nlines lines.
 */
static bool check(const char *json, size_t nlines, const char *rest)
{
    char *file = NULL;
    char *errors = tu_load_one(json, NULL, &file);
    bool ok = errors && tu_has_line(errors, file, rest);

    if (ok && nlines && tu_count_lines(errors) != nlines) {
        fprintf(stderr, "\nexpected %zu error lines, got:\n%s", nlines, errors);
        ok = false;
    }
    free(errors);
    free(file);
    return ok;
}

#define EXPECT1(json, rest) CU_ASSERT_TRUE(check(json, 1, rest))
#define EXPECT(json, rest) CU_ASSERT_TRUE(check(json, 0, rest))

/* ---- valid maps ---- */

static void test_valid_full(void)
{
    struct dw_mapset *set = NULL;
    const struct dw_map *m;
    char *errors = tu_load_one(
        "{'map': 'customers',"
        " 'source': {'table': 'public.customers', 'key': ['id']},"
        " 'target': {'connector': 'crm', 'table': 'accounts', 'key': ['account_no']},"
        " 'filter': {'column': 'company', 'in': ['usmf', null, 'usrt']},"
        " 'fields': ["
        "   {'source': 'name', 'target': 'name', 'required': true},"
        "   {'source': 'id', 'target': 'account_no'},"
        "   {'source': 'status', 'target': 'state', 'values': {'active': '0', 'blocked': null}, 'default': '0'},"
        "   {'target': 'origin_system', 'const': 'erp'},"
        "   {'target': 'note', 'const': null}],"
        " 'depends_on': []}",
        &set, NULL);

    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_EQUAL(set->nmaps, 1);
    m = &set->maps[0];
    CU_ASSERT_STRING_EQUAL(m->name, "customers");
    CU_ASSERT_STRING_EQUAL(m->source_table, "public.customers");
    CU_ASSERT_STRING_EQUAL(m->connector, "crm");
    CU_ASSERT_STRING_EQUAL(m->target_table, "accounts");
    CU_ASSERT_EQUAL(m->nkey, 1);
    CU_ASSERT_STRING_EQUAL(m->source_key[0], "id");
    CU_ASSERT_STRING_EQUAL(m->target_key[0], "account_no");
    CU_ASSERT_EQUAL(m->key_field[0], 1);
    CU_ASSERT_EQUAL(m->nfields, 5);
    CU_ASSERT_TRUE(m->fields[0].required);
    CU_ASSERT_TRUE(m->fields[2].has_values);
    CU_ASSERT_EQUAL(m->fields[2].nvalues, 2);
    CU_ASSERT_STRING_EQUAL(m->fields[2].values[0].from, "active");
    CU_ASSERT_STRING_EQUAL(m->fields[2].values[0].to, "0");
    CU_ASSERT_PTR_NULL(m->fields[2].values[1].to);
    CU_ASSERT_TRUE(m->fields[2].has_default);
    CU_ASSERT_STRING_EQUAL(m->fields[2].default_value, "0");
    CU_ASSERT_TRUE(m->fields[3].has_const);
    CU_ASSERT_PTR_NULL(m->fields[3].source);
    CU_ASSERT_STRING_EQUAL(m->fields[3].const_value, "erp");
    CU_ASSERT_TRUE(m->fields[4].has_const);
    CU_ASSERT_PTR_NULL(m->fields[4].const_value);
    CU_ASSERT_STRING_EQUAL(m->filter.column, "company");
    CU_ASSERT_EQUAL(m->filter.nin, 3);
    CU_ASSERT_PTR_NULL(m->filter.in[1]);
    CU_ASSERT_EQUAL(m->ndepends, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(m->file, "/m.json"));
    dw_mapset_free(set);
}

static void test_table_normalized(void)
{
    struct dw_mapset *set = NULL;
    char *errors = tu_load_one(MAP(""), &set, NULL);

    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_STRING_EQUAL(set->maps[0].source_table, "public.orders");
    dw_mapset_free(set);

    errors = tu_load_one("{'map': 'o', 'source': {'table': 'sales.orders', 'key': ['id']}, " TGT ", " FIELDS "}",
                         &set, NULL);
    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_STRING_EQUAL(set->maps[0].source_table, "sales.orders");
    dw_mapset_free(set);

    EXPECT1("{'map': 'o', 'source': {'table': 'a.b.c', 'key': ['id']}, " TGT ", " FIELDS "}",
            ": /source/table: table name \"a.b.c\" must be \"table\" or \"schema.table\"");
    EXPECT1("{'map': 'o', 'source': {'table': '.orders', 'key': ['id']}, " TGT ", " FIELDS "}",
            ": /source/table: table name \".orders\" must be \"table\" or \"schema.table\"");
    EXPECT1("{'map': 'o', 'source': {'table': 'sales.', 'key': ['id']}, " TGT ", " FIELDS "}",
            ": /source/table: table name \"sales.\" must be \"table\" or \"schema.table\"");
}

/* ---- syntax and encoding ---- */

static void test_syntax_error_line_column(void)
{
    EXPECT1("{'map': 'orders',\n  'source': {'table': 'orders',, 'key': ['id']}}",
            ":2:32: invalid JSON: expected a string (a key), found \",\"");
    EXPECT1("{'map': 'orders',\n", ":2:1: invalid JSON: expected a string (a key), found end of file");
    EXPECT1("", ":1:1: file is empty");
    EXPECT1(" \n ", ":2:2: file is empty");
    EXPECT1(MAP("") " trailing", ":1:218: invalid JSON: unexpected text after the end of the map");
    EXPECT1("{'map' 'x'}", ":1:8: invalid JSON: expected \":\" after a key, found \"\\\"\"");
    EXPECT1("{'map': 'x' 'y'}", ":1:13: invalid JSON: expected \",\" or \"}\", found \"\\\"\"");
    EXPECT1("{'a': [1 2]}", ":1:10: invalid JSON: expected \",\" or \"]\", found \"2\"");
    EXPECT1("{'a': tru}", ":1:7: invalid JSON: expected a value, found \"t\"");
    EXPECT1("{'a': 01}", ":1:7: invalid JSON: number with a leading zero");
    EXPECT1("{'a': 1.}", ":1:7: invalid JSON: invalid number");
    EXPECT1("{'a': 1234567890123456789012345678901234567890123456789012345678901234}",
            ":1:7: invalid JSON: number longer than 63 characters");
    EXPECT1("{'a': 'x\\q'}", ":1:9: invalid JSON: invalid escape in a string");
    EXPECT1("{'a': '\\u12'}", ":1:8: invalid JSON: \"\\u\" needs four hexadecimal digits");
    EXPECT1("{'a': '\\ud800'}", ":1:8: invalid JSON: unpaired UTF-16 surrogate in \"\\u\" escape");
    EXPECT1("{'a': 'x\ty'}", ":1:9: invalid JSON: control character U+0009 in a string (escape it)");
    EXPECT1("{'a': 'x", ":1:7: invalid JSON: unterminated string");
    EXPECT1("{'a': {'b': {'c': [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
            "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}",
            ":1:80: invalid JSON: nesting deeper than 64 levels");
}

static void test_syntax_error_position(void)
{
    char *file = NULL;
    char *errors = tu_load_one("{\n 'map': 'x',\n 'fields': [1, 2,]\n}", NULL, &file);

    CU_ASSERT_PTR_NOT_NULL_FATAL(errors);
    CU_ASSERT_TRUE(tu_has_line(errors, file, ":3:18: invalid JSON: expected a value, found \"]\""));
    free(errors);
    free(file);
}

static void test_bad_bytes(void)
{
    char *dir = tu_subdir();
    char *p1 = tu_write_raw(dir, "nul.json", "{\"map\"\0: 1}", 11);
    char *p2 = tu_write_raw(dir, "utf8.json", "{\n\"map\": \"a\xff\"}", 14);
    char *p3 = tu_write(dir, "esc.json", "{'map': 'a\\u0000b'}");
    char *p4 = tu_write_raw(dir, "bom.json", "\xEF\xBB\xBF{\"map\": 1}", 13);
    const char *paths[] = {dir};
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 1, &set, &errors, &err), DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(set);
    CU_ASSERT_TRUE(tu_has_line(errors, p1, ":1:7: file contains a NUL byte"));
    CU_ASSERT_TRUE(tu_has_line(errors, p2, ":2:10: invalid UTF-8: invalid byte"));
    CU_ASSERT_TRUE(tu_has_line(errors, p3, ":1:11: \"\\u0000\" is not allowed in a string"));
    /* a byte order mark is skipped: the file parses and fails on its content */
    CU_ASSERT_TRUE(tu_has_line(errors, p4, ": /map: expected a string, found a number"));
    free(errors);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(dir);
}

/* ---- structure: types, required and unknown keys ---- */

static void test_top_not_object(void)
{
    EXPECT1("[1, 2]", ": /: expected an object (one table map), found an array");
    EXPECT1("'orders'", ": /: expected an object (one table map), found a string");
}

static void test_missing_required_keys(void)
{
    char *file = NULL;
    char *errors = tu_load_one("{}", NULL, &file);

    CU_ASSERT_TRUE(tu_has_line(errors, file, ": /: missing required key \"map\""));
    CU_ASSERT_TRUE(tu_has_line(errors, file, ": /: missing required key \"source\""));
    CU_ASSERT_TRUE(tu_has_line(errors, file, ": /: missing required key \"target\""));
    CU_ASSERT_TRUE(tu_has_line(errors, file, ": /: missing required key \"fields\""));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 4);
    free(errors);
    free(file);

    EXPECT1("{'map': 'orders', 'source': {'key': ['id']}, " TGT ", " FIELDS "}",
            ": /source: missing required key \"table\"");
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders'}, " TGT ", " FIELDS "}",
            ": /source: missing required key \"key\"");
    EXPECT1("{'map': 'orders', " SRC ", 'target': {'table': 't', 'key': ['id']}, " FIELDS "}",
            ": /target: missing required key \"connector\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status'}]"),
            ": /fields/1: missing required key \"target\"");
    EXPECT1(MAP(", 'filter': {'in': ['a']}"), ": /filter: missing required key \"column\"");
    EXPECT1(MAP(", 'filter': {'column': 'c'}"), ": /filter: missing required key \"in\"");
}

static void test_unknown_keys(void)
{
    EXPECT1(MAP(", 'sorce': 1"),
            ": /: unknown key \"sorce\"; valid keys are \"map\", \"source\", \"target\", \"filter\", "
            "\"fields\", \"depends_on\"");
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders', 'key': ['id'], 'schema': 'x'}, " TGT ", " FIELDS "}",
            ": /source: unknown key \"schema\"; valid keys are \"table\", \"key\"");
    EXPECT1("{'map': 'orders', " SRC ", 'target': {'connector': 'pg', 'table': 'orders', 'key': ['id'], 'kind': 1}, "
            FIELDS "}",
            ": /target: unknown key \"kind\"; valid keys are \"connector\", \"table\", \"key\"");
    EXPECT1(MAP(", 'filter': {'column': 'c', 'in': ['a'], 'not_in': ['b']}"),
            ": /filter: unknown key \"not_in\"; valid keys are \"column\", \"in\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': 'status', 'requird': true}]"),
            ": /fields/1: unknown key \"requird\"; valid keys are \"source\", \"target\", \"required\", "
            "\"values\", \"default\", \"const\", \"lookup\"");
}

static void test_duplicate_json_keys(void)
{
    EXPECT1("{'map': 'orders', 'map': 'orders', " SRC ", " TGT ", " FIELDS "}", ": /: duplicate key \"map\"");
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders', 'table': 'x', 'key': ['id']}, " TGT ", " FIELDS "}",
            ": /source: duplicate key \"table\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'},"
                 " {'source': 'status', 'target': 'status', 'values': {'a': '1', 'b': '2', 'a': '3'}}]"),
            ": /fields/1/values: duplicate key \"a\"");
}

static void test_wrong_types(void)
{
    EXPECT1("{'map': 'orders', 'source': ['orders'], " TGT ", " FIELDS "}",
            ": /source: expected an object, found an array");
    EXPECT1("{'map': 7, " SRC ", " TGT ", " FIELDS "}", ": /map: expected a string, found a number");
    EXPECT1("{'map': 'orders', " SRC ", " TGT ", 'fields': {}}", ": /fields: expected an array, found an object");
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders', 'key': 'id'}, " TGT ", " FIELDS "}",
            ": /source/key: expected an array, found a string");
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders', 'key': ['id', 3]}, "
            "'target': {'connector': 'pg', 'table': 'orders', 'key': ['id', 'x']}, " FIELDS "}",
            ": /source/key/1: expected a string, found a number");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'a', 'target': 'a'},"
                 " {'source': 'status', 'target': 'status', 'values': ['active']}]"),
            ": /fields/2/values: expected an object, found an array");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': 'status', 'required': 'yes'}]"),
            ": /fields/1/required: expected a boolean, found a string");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, 'status']"), ": /fields/1: expected an object, found a string");
    EXPECT1(MAP(", 'filter': ['c']"), ": /filter: expected an object, found an array");
    EXPECT1(MAP(", 'depends_on': 'companies'"), ": /depends_on: expected an array, found a string");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'origin', 'const': 1}]"),
            ": /fields/1/const: expected a string or null, found a number");
}

static void test_empty_lists(void)
{
    EXPECT("{'map': 'orders', 'source': {'table': 'orders', 'key': []}, "
            "'target': {'connector': 'pg', 'table': 'orders', 'key': []}, " FIELDS "}",
            ": /source/key: expected at least one column");
    EXPECT("{'map': 'orders', " SRC ", " TGT ", 'fields': []}", ": /fields: expected at least one field");
    EXPECT1(MAP(", 'filter': {'column': 'c', 'in': []}"), ": /filter/in: expected at least one value");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': 'status', 'values': {}}]"),
            ": /fields/1/values: expected at least one entry");
}

/* ---- identifiers ---- */

static void test_identifiers(void)
{
    EXPECT1("{'map': '', " SRC ", " TGT ", " FIELDS "}", ": /map: table map name must not be empty");
    EXPECT1("{'map': 'a\\nb', " SRC ", " TGT ", " FIELDS "}",
            ": /map: table map name \"a\\nb\" contains a control character");
    EXPECT1("{'map': 'orders', " SRC ", 'target': {'connector': '', 'table': 'orders', 'key': ['id']}, " FIELDS "}",
            ": /target/connector: connector name must not be empty");
    EXPECT1("{'map': 'orders', " SRC ", 'target': {'connector': 'pg', 'table': 'or\\u0001ders', 'key': ['id']}, "
            FIELDS "}",
            ": /target/table: table name \"or\\u0001ders\" contains a control character");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'st\\tatus', 'target': 'status'}]"),
            ": /fields/1/source: column name \"st\\tatus\" contains a control character");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': ''}]"),
            ": /fields/1/target: column name must not be empty");
    EXPECT1(MAP(", 'filter': {'column': '', 'in': ['a']}"), ": /filter/column: column name must not be empty");
    EXPECT1(MAP(", 'depends_on': ['']"), ": /depends_on/0: table map must not be empty");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'},"
                 " {'source': 'a234567890123456789012345678901234567890123456789012345678901234', 'target': 'x'}]"),
            ": /fields/1/source: column name \"a234567890123456789012345678901234567890123456789012345678901234\" "
            "is longer than 63 bytes, the longest PostgreSQL name");
}

/* ---- keys ---- */

static void test_key_arity(void)
{
    EXPECT1("{'map': 'orders', 'source': {'table': 'orders', 'key': ['id', 'line']}, " TGT ", "
            "'fields': [{'source': 'id', 'target': 'id'}, {'source': 'line', 'target': 'line'}]}",
            ": /target/key: expected 2 columns (as many as /source/key), found 1");
}

static void test_key_not_mapped(void)
{
    EXPECT1(MAPF("[{'source': 'status', 'target': 'status'}]"),
            ": /target/key/0: no field maps source key column \"id\" to target key column \"id\"");
}

static void test_key_wrong_position(void)
{
    EXPECT1("{'map': 'l', 'source': {'table': 'lines', 'key': ['order_id', 'line']},"
            " 'target': {'connector': 'pg', 'table': 'lines', 'key': ['order_no', 'line_no']},"
            " 'fields': [{'source': 'order_id', 'target': 'order_no'}, {'source': 'order_id', 'target': 'line_no'},"
            "            {'source': 'line', 'target': 'line'}]}",
            ": /fields/1/source: target key column \"line_no\" must be mapped from source key column \"line\" at "
            "the same position, found \"order_id\"");
}

static void test_key_field_plain(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id', 'values': {'1': '2'}}]"),
            ": /fields/0/values: key field \"id\" cannot have \"values\"");
    EXPECT(MAPF("[{'source': 'id', 'target': 'id', 'values': {'1': '2'}, 'default': '3'}]"),
           ": /fields/0/default: key field \"id\" cannot have \"default\"");
    EXPECT1(MAPF("[{'target': 'id', 'const': '1'}]"),
            ": /fields/0/const: target key column \"id\" must be mapped from source key column \"id\", "
            "not set by \"const\"");
}

static void test_duplicate_key_columns(void)
{
    EXPECT("{'map': 'orders', 'source': {'table': 'orders', 'key': ['id', 'id']},"
           " 'target': {'connector': 'pg', 'table': 'orders', 'key': ['id', 'x']}, " FIELDS "}",
           ": /source/key/1: duplicate column \"id\"");
    EXPECT("{'map': 'orders', 'source': {'table': 'orders', 'key': ['id', 'x']},"
           " 'target': {'connector': 'pg', 'table': 'orders', 'key': ['id', 'id']}, " FIELDS "}",
           ": /target/key/1: duplicate column \"id\"");
}

static void test_duplicate_target_columns(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'status', 'target': 'state'},"
                 " {'source': 'status2', 'target': 'state'}]"),
            ": /fields/2/target: duplicate target column \"state\" (also set by /fields/1)");
    /* the same source column may feed several target columns */
    CU_ASSERT_PTR_NULL(tu_load_one(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 'id', 'target': 'legacy_id'}]"),
                                   NULL, NULL));
}

/* ---- field combinations ---- */

static void test_const_combinations(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'o', 'const': 'erp', 'source': 's'}]"),
            ": /fields/1/source: \"const\" cannot be combined with \"source\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'o', 'const': 'erp', 'values': {'a': 'b'}}]"),
            ": /fields/1/values: \"const\" cannot be combined with \"values\"");
    EXPECT(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'o', 'const': 'erp', 'default': 'x'}]"),
           ": /fields/1/default: \"const\" cannot be combined with \"default\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'o', 'const': 'erp', 'required': true}]"),
            ": /fields/1/required: \"const\" cannot be combined with \"required\"");
}

static void test_field_needs_source(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'o', 'required': true}]"),
            ": /fields/1: a field needs \"source\", \"const\" or \"lookup\"");
}

static void test_default_requires_values(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 's', 'target': 's', 'default': '0'}]"),
            ": /fields/1/default: \"default\" requires \"values\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 's', 'target': 's', 'values': {'a': '1'},"
                 " 'default': 0}]"),
            ": /fields/1/default: expected a string or null, found a number");
}

static void test_values_entries(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 's', 'target': 's', 'values': {'a': '1', 'b': 2}}]"),
            ": /fields/1/values/b: expected a string or null, found a number");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'source': 's', 'target': 's', 'values': {'a/b': true}}]"),
            ": /fields/1/values/a~1b: expected a string or null, found a boolean");
    CU_ASSERT_PTR_NULL(tu_load_one(MAPF("[{'source': 'id', 'target': 'id'},"
                                        " {'source': 's', 'target': 's', 'values': {'a': null, '': 'empty'}}]"),
                                   NULL, NULL));
}

static void test_filter(void)
{
    EXPECT1(MAP(", 'filter': {'column': 'c', 'in': ['a', 1]}"),
            ": /filter/in/1: expected a string or null, found a number");
    EXPECT1(MAP(", 'filter': {'column': 'c', 'in': 'a'}"), ": /filter/in: expected an array, found a string");
    EXPECT1(MAP(", 'filter': {'column': ['c'], 'in': ['a']}"), ": /filter/column: expected a string, found an array");
}

/* ---- across files ---- */

static const char *const companies =
    "{'map': 'companies', 'source': {'table': 'companies', 'key': ['id']},"
    " 'target': {'connector': 'pg', 'table': 'companies', 'key': ['id']},"
    " 'fields': [{'source': 'id', 'target': 'id'}]%s}";

/* A minimal valid map named name with the given depends_on list (JSON array text or NULL). */
static char *map_text(const char *name, const char *table, const char *depends)
{
    char *buf = tu_malloc(1024);

    snprintf(buf, 1024,
             "{'map': '%s', 'source': {'table': '%s', 'key': ['id']},"
             " 'target': {'connector': 'pg', 'table': '%s', 'key': ['id']},"
             " 'fields': [{'source': 'id', 'target': 'id'}]%s%s}",
             name, table, table, depends ? ", 'depends_on': " : "", depends ? depends : "");
    return buf;
}

static char *write_map(const char *dir, const char *file, const char *name, const char *depends)
{
    char *text = map_text(name, name, depends);
    char *path = tu_write(dir, file, text);

    free(text);
    return path;
}

static char *load_dir(const char *dir, struct dw_mapset **set)
{
    const char *paths[] = {dir};
    struct dw_error err;
    char *errors = NULL;
    struct dw_mapset *s = NULL;
    dw_errcode rc;

    dw_error_clear(&err);
    rc = dw_mapset_load(paths, 1, &s, &errors, &err);
    CU_ASSERT_EQUAL(rc == DW_OK, errors == NULL);
    if (set)
        *set = s;
    else
        dw_mapset_free(s);
    return errors;
}

static void test_depends_unknown(void)
{
    char *dir = tu_subdir();
    char *p = write_map(dir, "a.json", "a", "['companies', 'nope']");
    char *q = tu_write(dir, "companies.json", "{'map': 'companies', 'source': {'table': 'companies', 'key': ['id']},"
                       " 'target': {'connector': 'pg', 'table': 'companies', 'key': ['id']},"
                       " 'fields': [{'source': 'id', 'target': 'id'}]}");
    char *errors = load_dir(dir, NULL);

    (void) companies;
    CU_ASSERT_TRUE(tu_has_line(errors, p, ": /depends_on/1: unknown table map \"nope\""));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 1);
    free(errors);
    free(p);
    free(q);
    free(dir);
}

static void test_depends_duplicate(void)
{
    EXPECT(MAP(", 'depends_on': ['orders', 'orders']"), ": /depends_on/1: duplicate table map \"orders\"");
}

static void test_cycle(void)
{
    char *dir = tu_subdir();
    char *pa = write_map(dir, "1.json", "b", "['c']");
    char *pb = write_map(dir, "2.json", "c", "['x', 'a']");
    char *pc = write_map(dir, "3.json", "a", "['b']");
    char *px = write_map(dir, "4.json", "x", NULL);
    char *errors = load_dir(dir, NULL);

    /* named once, from its first map by name, at the entry that starts it */
    CU_ASSERT_TRUE(tu_has_line(errors, pc, ": /depends_on/0: dependency cycle: \"a\" -> \"b\" -> \"c\" -> \"a\""));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 1);
    free(errors);
    free(pa);
    free(pb);
    free(pc);
    free(px);
    free(dir);
}

static void test_cycle_self_and_two(void)
{
    char *dir = tu_subdir();
    char *p1 = write_map(dir, "s.json", "s", "['s']");
    char *p2 = write_map(dir, "u.json", "u", "['v']");
    char *p3 = write_map(dir, "v.json", "v", "['u']");
    char *p4 = write_map(dir, "w.json", "w", "['u']");   /* downstream of a cycle: no error of its own */
    char *errors = load_dir(dir, NULL);

    CU_ASSERT_TRUE(tu_has_line(errors, p1, ": /depends_on/0: dependency cycle: \"s\" -> \"s\""));
    CU_ASSERT_TRUE(tu_has_line(errors, p2, ": /depends_on/0: dependency cycle: \"u\" -> \"v\" -> \"u\""));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 2);
    free(errors);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    free(dir);
}

static void test_duplicate_map_names(void)
{
    char *dir = tu_subdir();
    char *p1 = write_map(dir, "a.json", "orders", NULL);
    char *p2 = write_map(dir, "b.json", "orders", NULL);
    char *errors = load_dir(dir, NULL);
    char rest[4096];

    snprintf(rest, sizeof(rest), ": /map: duplicate table map name \"orders\" (also in %s)", p1);
    CU_ASSERT_TRUE(tu_has_line(errors, p2, rest));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 1);
    free(errors);
    free(p1);
    free(p2);
    free(dir);
}

static void test_folder_reports_all(void)
{
    char *dir = tu_subdir();
    char *good = write_map(dir, "a_good.json", "good", NULL);
    char *b1 = tu_write(dir, "b_bad.json", "{'map': 'b1', 'x': 1, 'y': 2, " SRC ", " TGT ", " FIELDS "}");
    char *b2 = tu_write(dir, "c_bad.json", "{'map': 'b2'");
    char *b3 = write_map(dir, "d_bad.json", "b3", "['missing']");
    char *ignored = tu_write(dir, "notes.txt", "not a map");
    char *hidden = tu_write(dir, ".hidden.json", "garbage");
    const char *paths[] = {dir};
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 1, &set, &errors, &err), DW_ERR_CONFIG);
    CU_ASSERT_PTR_NULL(set);
    CU_ASSERT_TRUE(tu_has_line(errors, b1, ": /: unknown key \"x\"; valid keys are \"map\", \"source\", \"target\", "
                                           "\"filter\", \"fields\", \"depends_on\""));
    CU_ASSERT_TRUE(tu_has_line(errors, b1, ": /: unknown key \"y\"; valid keys are \"map\", \"source\", \"target\", "
                                           "\"filter\", \"fields\", \"depends_on\""));
    CU_ASSERT_TRUE(tu_has_line(errors, b2, ":1:13: invalid JSON: expected \",\" or \"}\", found end of file"));
    CU_ASSERT_TRUE(tu_has_line(errors, b3, ": /depends_on/0: unknown table map \"missing\""));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 4);
    CU_ASSERT_EQUAL(err.code, DW_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "cannot load table maps: 4 errors in 3 files");
    CU_ASSERT_PTR_NOT_NULL(strstr(err.detail, "b_bad.json: /: unknown key \"x\""));
    /* errors come file by file, in name order */
    CU_ASSERT_TRUE(strstr(errors, "b_bad.json") < strstr(errors, "c_bad.json"));
    CU_ASSERT_TRUE(strstr(errors, "c_bad.json") < strstr(errors, "d_bad.json"));
    free(errors);

    /* errors may be NULL */
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 1, &set, NULL, &err), DW_ERR_CONFIG);
    free(good);
    free(b1);
    free(b2);
    free(b3);
    free(ignored);
    free(hidden);
    free(dir);
}

static void test_paths(void)
{
    char *dir = tu_subdir();
    char missing[4096], slash[4096];
    const char *paths[2];
    struct dw_mapset *set = NULL;
    struct dw_error err;
    char *errors = NULL, *p;

    /* an empty folder and a missing path */
    snprintf(missing, sizeof(missing), "%s/nope.json", dir);
    paths[0] = dir;
    paths[1] = missing;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 2, &set, &errors, &err), DW_ERR_CONFIG);
    CU_ASSERT_TRUE(tu_has_line(errors, dir, ": directory contains no table map files (*.json)"));
    CU_ASSERT_TRUE(tu_has_line(errors, missing, ": could not open: No such file or directory"));
    free(errors);

    /* a folder given with a trailing slash, and a file given directly */
    p = write_map(dir, "a.json", "a", NULL);
    snprintf(slash, sizeof(slash), "%s/", dir);
    paths[0] = slash;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 1, &set, &errors, &err), DW_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_STRING_EQUAL(set->maps[0].file, p);
    dw_mapset_free(set);

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_mapset_load(paths, 0, &set, &errors, &err), DW_ERR_CONFIG);
    CU_ASSERT_STRING_EQUAL(err.message, "no table map files given");
    free(p);
    free(dir);
}

/* ---- order and lookups ---- */

static void test_dependency_order(void)
{
    char *dir = tu_subdir();
    char *p[6];
    struct dw_mapset *set = NULL;
    char *errors;
    /* the smallest name among the maps whose parents are all placed comes next */
    static const char *const expected[] = {"companies", "customers", "items", "orders", "order_lines", "zeta"};

    p[0] = write_map(dir, "1.json", "order_lines", "['orders', 'items']");
    p[1] = write_map(dir, "2.json", "orders", "['customers']");
    p[2] = write_map(dir, "3.json", "customers", "['companies']");
    p[3] = write_map(dir, "4.json", "zeta", NULL);
    p[4] = write_map(dir, "5.json", "items", NULL);
    p[5] = write_map(dir, "6.json", "companies", NULL);
    errors = load_dir(dir, &set);
    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    CU_ASSERT_EQUAL_FATAL(set->nmaps, 6);
    for (size_t i = 0; i < 6; i++)
        CU_ASSERT_STRING_EQUAL(set->maps[i].name, expected[i]);
    CU_ASSERT_PTR_EQUAL(dw_mapset_find(set, "orders"), &set->maps[3]);
    CU_ASSERT_PTR_EQUAL(dw_mapset_find(set, "companies"), &set->maps[0]);
    CU_ASSERT_PTR_EQUAL(dw_mapset_find(set, "items"), &set->maps[2]);
    CU_ASSERT_PTR_EQUAL(dw_mapset_find(set, "zeta"), &set->maps[5]);
    CU_ASSERT_PTR_NULL(dw_mapset_find(set, "nope"));
    CU_ASSERT_PTR_NULL(dw_mapset_find(set, ""));
    dw_mapset_free(set);
    for (size_t i = 0; i < 6; i++)
        free(p[i]);
    free(dir);
}

static void test_source_columns(void)
{
    char *dir = tu_subdir();
    char *p1 = tu_write(dir, "a.json",
                        "{'map': 'a', 'source': {'table': 'orders', 'key': ['id']},"
                        " 'target': {'connector': 'pg', 'table': 'a', 'key': ['id']},"
                        " 'filter': {'column': 'company', 'in': ['x']},"
                        " 'fields': [{'source': 'status', 'target': 'status'}, {'source': 'id', 'target': 'id'},"
                        "            {'target': 'c', 'const': 'x'}]}");
    char *p2 = tu_write(dir, "b.json",
                        "{'map': 'b', 'source': {'table': 'public.orders', 'key': ['id']},"
                        " 'target': {'connector': 'pg', 'table': 'b', 'key': ['id']},"
                        " 'fields': [{'source': 'id', 'target': 'id'}, {'source': 'total', 'target': 'total'},"
                        "            {'source': 'status', 'target': 's2'}]}");
    struct dw_mapset *set = NULL;
    const char **cols = NULL;
    size_t n;
    char *errors = load_dir(dir, &set);

    CU_ASSERT_PTR_NULL(errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(set);
    n = dw_mapset_source_columns(set, "public.orders", &cols);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_STRING_EQUAL(cols[0], "id");
    CU_ASSERT_STRING_EQUAL(cols[1], "status");
    CU_ASSERT_STRING_EQUAL(cols[2], "company");
    CU_ASSERT_STRING_EQUAL(cols[3], "total");
    free(cols);
    CU_ASSERT_EQUAL(dw_mapset_source_columns(set, "orders", &cols), 4);
    free(cols);
    CU_ASSERT_EQUAL(dw_mapset_source_columns(set, "public.other", &cols), 0);
    CU_ASSERT_PTR_NULL(cols);
    dw_mapset_free(set);
    free(p1);
    free(p2);
    free(dir);
}

static void test_too_many_errors(void)
{
    char text[16384];
    size_t pos = 0;
    char *file = NULL, *errors;

    pos += (size_t) snprintf(text + pos, sizeof(text) - pos, "{");
    for (int i = 0; i < 80; i++)
        pos += (size_t) snprintf(text + pos, sizeof(text) - pos, "'k%d': 1, ", i);
    snprintf(text + pos, sizeof(text) - pos, "'map': 'x'}");
    errors = tu_load_one(text, NULL, &file);
    CU_ASSERT_TRUE(tu_has_line(errors, file, ": too many errors, the rest of this file is not shown"));
    CU_ASSERT_EQUAL(tu_count_lines(errors), 51);
    free(errors);
    free(file);
}

/* ---- lookups ---- */

#define LK(lookup) MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'p@odata.bind', 'lookup': " lookup "}]")

static void test_lookup_valid(void)
{
    struct dw_mapset *set = NULL;
    const struct dw_lookup *lk;
    char *errors = tu_load_one(MAPF("[{'source': 'id', 'target': 'id'},"
                                    " {'target': 'p@odata.bind', 'required': true, 'lookup': {'entity_set': 'Lines',"
                                    "  'key': {'order_ID': {'source': 'oid', 'type': 'Edm.Int32'}, 'code': 'c'}}}]"),
                               &set, NULL);

    CU_ASSERT_PTR_NULL_FATAL(errors);
    lk = set->maps[0].fields[1].lookup;
    CU_ASSERT_PTR_NOT_NULL_FATAL(lk);
    CU_ASSERT_PTR_NULL(set->maps[0].fields[1].source);
    CU_ASSERT_TRUE(set->maps[0].fields[1].required);
    CU_ASSERT_STRING_EQUAL(lk->entity_set, "Lines");
    CU_ASSERT_EQUAL_FATAL(lk->nkeys, 2);
    CU_ASSERT_STRING_EQUAL(lk->keys[0].property, "order_ID");
    CU_ASSERT_STRING_EQUAL(lk->keys[0].source, "oid");
    CU_ASSERT_EQUAL(lk->keys[0].type, DW_LOOKUP_INTEGER);
    CU_ASSERT_STRING_EQUAL(lk->keys[1].property, "code");
    CU_ASSERT_STRING_EQUAL(lk->keys[1].source, "c");
    CU_ASSERT_EQUAL(lk->keys[1].type, DW_LOOKUP_STRING);
    dw_mapset_free(set);
}

static void test_lookup_exclusions(void)
{
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'p', 'source': 's',"
                 " 'lookup': {'entity_set': 'A', 'key': {'k': 'c'}}}]"),
            ": /fields/1/source: \"lookup\" cannot be combined with \"source\"");
    EXPECT(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'p', 'const': 'x',"
                " 'lookup': {'entity_set': 'A', 'key': {'k': 'c'}}}]"),
           ": /fields/1/const: \"lookup\" cannot be combined with \"const\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'p', 'values': {'a': 'b'},"
                 " 'lookup': {'entity_set': 'A', 'key': {'k': 'c'}}}]"),
            ": /fields/1/values: \"lookup\" cannot be combined with \"values\"");
    EXPECT1(MAPF("[{'source': 'id', 'target': 'id'}, {'target': 'p', 'default': 'x',"
                 " 'lookup': {'entity_set': 'A', 'key': {'k': 'c'}}}]"),
            ": /fields/1/default: \"lookup\" cannot be combined with \"default\"");
    /* a target key column is mapped from its source key column, never looked up */
    EXPECT1(MAPF("[{'target': 'id', 'lookup': {'entity_set': 'A', 'key': {'k': 'id'}}}]"),
            ": /fields/0/lookup: target key column \"id\" must be mapped from source key column \"id\", not "
            "set by \"lookup\"");
}

static void test_lookup_errors(void)
{
    EXPECT1(LK("'Accounts'"), ": /fields/1/lookup: expected an object, found a string");
    EXPECT1(LK("{'key': {'k': 'c'}}"), ": /fields/1/lookup: missing required key \"entity_set\"");
    EXPECT1(LK("{'entity_set': 'A'}"), ": /fields/1/lookup: missing required key \"key\"");
    EXPECT1(LK("{'entity_set': '', 'key': {'k': 'c'}}"),
            ": /fields/1/lookup/entity_set: entity set name must not be empty");
    EXPECT1(LK("{'entity_set': 3, 'key': {'k': 'c'}}"),
            ": /fields/1/lookup/entity_set: expected a string, found a number");
    EXPECT1(LK("{'entity_set': 'A', 'key': {}}"), ": /fields/1/lookup/key: expected at least one key property");
    EXPECT1(LK("{'entity_set': 'A', 'key': ['c']}"), ": /fields/1/lookup/key: expected an object, found an array");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': ''}}"), ": /fields/1/lookup/key/k: column name must not be empty");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'': 'c'}}"),
            ": /fields/1/lookup/key/: key property name must not be empty");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': 1}}"),
            ": /fields/1/lookup/key/k: expected a string (a source column) or an object, found a number");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': 'c', 'k': 'd'}}"), ": /fields/1/lookup/key: duplicate key \"k\"");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'a/b': {'type': 'Edm.Int32'}}}"),
            ": /fields/1/lookup/key/a~1b: missing required key \"source\"");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': {'source': 'c', 'type': 'Edm.Double'}}}"),
            ": /fields/1/lookup/key/k/type: unknown lookup key type \"Edm.Double\"; valid types are \"Edm.String\", "
            "\"Edm.Int16\", \"Edm.Int32\", \"Edm.Int64\", \"Edm.Byte\", \"Edm.SByte\", \"Edm.Decimal\", \"Edm.Guid\"");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': {'source': 'c', 'type': 1}}}"),
            ": /fields/1/lookup/key/k/type: expected a string, found a number");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': {'source': 'c', 'typ': 'Edm.String'}}}"),
            ": /fields/1/lookup/key/k: unknown key \"typ\"; valid keys are \"source\", \"type\"");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': 'c'}, 'filter': 'x'}"),
            ": /fields/1/lookup: unknown key \"filter\"; valid keys are \"entity_set\", \"key\"");
    EXPECT1(LK("{'entity_set': 'A', 'key': {'k': 'a_column_name_that_is_longer_than_sixty_three_bytes_"
               "which_postgres_cuts'}}"),
            ": /fields/1/lookup/key/k: column name \"a_column_name_that_is_longer_than_sixty_three_bytes_which_"
            "postgres_cuts\" is longer than 63 bytes, the longest PostgreSQL name");
}

int main(void)
{
    static const struct tu_test tests[] = {
        {"valid map, every member", test_valid_full},
        {"source table normalized", test_table_normalized},
        {"syntax error: line and column", test_syntax_error_line_column},
        {"syntax error: position in a later line", test_syntax_error_position},
        {"NUL, invalid UTF-8, \\u0000, BOM", test_bad_bytes},
        {"top level not an object", test_top_not_object},
        {"missing required keys", test_missing_required_keys},
        {"unknown keys list the valid ones", test_unknown_keys},
        {"duplicate JSON keys", test_duplicate_json_keys},
        {"wrong types", test_wrong_types},
        {"empty lists", test_empty_lists},
        {"identifiers: empty, control characters, length", test_identifiers},
        {"key arity", test_key_arity},
        {"key column not mapped", test_key_not_mapped},
        {"key column mapped at another position", test_key_wrong_position},
        {"key fields are plain", test_key_field_plain},
        {"duplicate key columns", test_duplicate_key_columns},
        {"duplicate target columns", test_duplicate_target_columns},
        {"const excludes source, values, default, required", test_const_combinations},
        {"a field needs source or const", test_field_needs_source},
        {"default requires values", test_default_requires_values},
        {"values entries are strings or null", test_values_entries},
        {"filter", test_filter},
        {"depends_on an unknown map", test_depends_unknown},
        {"depends_on twice the same map", test_depends_duplicate},
        {"dependency cycle named", test_cycle},
        {"self cycle and two cycles", test_cycle_self_and_two},
        {"duplicate map names across files", test_duplicate_map_names},
        {"folder: all bad files, all errors", test_folder_reports_all},
        {"paths: empty folder, missing file, trailing slash", test_paths},
        {"dependency order, ties by name; find", test_dependency_order},
        {"source columns", test_source_columns},
        {"too many errors in one file", test_too_many_errors},
        {"lookup: a valid one", test_lookup_valid},
        {"lookup: excludes source, const, values, default; not a key", test_lookup_exclusions},
        {"lookup: errors with their paths", test_lookup_errors},
    };

    return tu_run("map_load", tests, sizeof(tests) / sizeof(tests[0]));
}
