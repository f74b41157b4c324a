/*
 * The odata connector's value encoder (connectors/odata/dw_odata_encode.c):
 * source text as PostgreSQL renders it, to OData key literals (percent-
 * encoded for a URL path) and JSON values, for every EDM kind; and the values
 * each type must refuse before anything is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/odata/dw_odata_encode.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_odata_property prop(const char *type, dw_odata_kind kind)
{
    struct dw_odata_property p = {.name = "p", .type = type, .kind = kind};

    if (strcmp(type, "Edm.Int32") == 0) {
        p.min = INT32_MIN;
        p.max = INT32_MAX;
    } else if (strcmp(type, "Edm.Int64") == 0) {
        p.min = INT64_MIN;
        p.max = INT64_MAX;
    } else if (strcmp(type, "Edm.Byte") == 0) {
        p.min = 0;
        p.max = 255;
    }
    return p;
}

/* The key literal of value, or "ERR: message". */
static const char *key(const char *type, dw_odata_kind kind, const char *value)
{
    static char out[512];
    struct dw_odata_property p = prop(type, kind);
    struct dw_buf b;
    struct dw_error err;

    dw_buf_init(&b);
    dw_error_clear(&err);
    if (dw_odata_put_key_literal(&b, &p, value, &err) != DW_OK)
        snprintf(out, sizeof(out), "ERR: %s", err.message);
    else
        snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    dw_buf_cleanup(&b);
    return out;
}

static const char *json(const char *type, dw_odata_kind kind, const char *value)
{
    static char out[512];
    struct dw_odata_property p = prop(type, kind);
    struct dw_buf b;
    struct dw_error err;

    dw_buf_init(&b);
    dw_error_clear(&err);
    if (dw_odata_put_json_value(&b, &p, value, &err) != DW_OK)
        snprintf(out, sizeof(out), "ERR: %s", err.message);
    else
        snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
    dw_buf_cleanup(&b);
    return out;
}

#define S "Edm.String", DW_ODATA_STRING
#define I32 "Edm.Int32", DW_ODATA_INT
#define I64 "Edm.Int64", DW_ODATA_INT
#define U8 "Edm.Byte", DW_ODATA_INT
#define DEC "Edm.Decimal", DW_ODATA_DECIMAL
#define DBL "Edm.Double", DW_ODATA_DOUBLE
#define BOOL "Edm.Boolean", DW_ODATA_BOOLEAN
#define DATE "Edm.Date", DW_ODATA_DATE
#define DTO "Edm.DateTimeOffset", DW_ODATA_DATETIMEOFFSET
#define TOD "Edm.TimeOfDay", DW_ODATA_TIMEOFDAY
#define GUID "Edm.Guid", DW_ODATA_GUID
#define BIN "Edm.Binary", DW_ODATA_BINARY
#define DUR "Edm.Duration", DW_ODATA_DURATION

static void test_string_keys(void)
{
    DW_ASSERT_STREQ(key(S, "A1"), "'A1'");
    DW_ASSERT_STREQ(key(S, "O'Brien"), "'O''Brien'");
    DW_ASSERT_STREQ(key(S, "''"), "''''''");
    DW_ASSERT_STREQ(key(S, "a b/c?d#e&f=g+h%i"), "'a%20b%2Fc%3Fd%23e%26f%3Dg%2Bh%25i'");
    DW_ASSERT_STREQ(key(S, "(x,y)"), "'%28x%2Cy%29'");
    DW_ASSERT_STREQ(key(S, "é€"), "'%C3%A9%E2%82%AC'");
    DW_ASSERT_STREQ(key(S, "a-b.c_d~e:f"), "'a-b.c_d~e:f'");
    DW_ASSERT_STREQ(key(S, ""), "''");
    DW_ASSERT_CONTAINS(key(S, NULL), "key property \"p\" is null");
    DW_ASSERT_CONTAINS(key(S, "\xc3\x28"), "not valid UTF-8");
}

static void test_string_json(void)
{
    DW_ASSERT_STREQ(json(S, "plain"), "\"plain\"");
    DW_ASSERT_STREQ(json(S, "q\"b\\n\nt\t"), "\"q\\\"b\\\\n\\nt\\t\"");
    DW_ASSERT_STREQ(json(S, "é"), "\"é\"");
    DW_ASSERT_STREQ(json(S, NULL), "null");
    DW_ASSERT_CONTAINS(json(S, "\xff"), "not valid UTF-8");
    DW_ASSERT_STREQ(json("NS.Color", DW_ODATA_ENUM, "Red"), "\"Red\"");
    DW_ASSERT_CONTAINS(json("Collection(Edm.String)", DW_ODATA_OTHER, "x"), "cannot write");
}

static void test_integers(void)
{
    DW_ASSERT_STREQ(key(I32, "42"), "42");
    DW_ASSERT_STREQ(key(I32, "-7"), "-7");
    DW_ASSERT_STREQ(json(I32, "007"), "7");
    DW_ASSERT_STREQ(json(I32, "+5"), "5");
    DW_ASSERT_STREQ(json(I32, "2147483647"), "2147483647");
    DW_ASSERT_CONTAINS(json(I32, "2147483648"), "out of range");
    DW_ASSERT_STREQ(json(I64, "9223372036854775807"), "9223372036854775807");
    DW_ASSERT_STREQ(json(I64, "9007199254740993"), "9007199254740993");   /* no double on the way */
    DW_ASSERT_CONTAINS(json(I64, "9223372036854775808"), "out of range");
    DW_ASSERT_CONTAINS(json(U8, "256"), "out of range");
    DW_ASSERT_CONTAINS(json(U8, "-1"), "out of range");
    DW_ASSERT_CONTAINS(json(I32, "1.5"), "not a valid Edm.Int32: expected an integer");
    DW_ASSERT_CONTAINS(json(I32, ""), "expected an integer");
    DW_ASSERT_CONTAINS(json(I32, "-"), "expected an integer");
    DW_ASSERT_CONTAINS(json(I32, "12a"), "expected an integer");
    DW_ASSERT_STREQ(json(I32, NULL), "null");
}

static void test_decimals_doubles(void)
{
    DW_ASSERT_STREQ(json(DEC, "12.50"), "12.50");
    DW_ASSERT_STREQ(json(DEC, "12345678901234567890.123456789"), "12345678901234567890.123456789");
    DW_ASSERT_STREQ(json(DEC, ".5"), "0.5");
    DW_ASSERT_STREQ(json(DEC, "-.5"), "-0.5");
    DW_ASSERT_STREQ(json(DEC, "5."), "5");
    DW_ASSERT_STREQ(json(DEC, "+0012.0"), "12.0");
    DW_ASSERT_STREQ(json(DEC, "1e5"), "1e5");
    DW_ASSERT_STREQ(json(DEC, "1.5E-3"), "1.5e-3");
    DW_ASSERT_STREQ(key(DEC, "-3.25"), "-3.25");
    DW_ASSERT_CONTAINS(json(DEC, "NaN"), "expected a number");
    DW_ASSERT_CONTAINS(json(DEC, "1e"), "expected a number");
    DW_ASSERT_CONTAINS(json(DEC, "."), "expected a number");
    DW_ASSERT_CONTAINS(json(DEC, "1,5"), "expected a number");
    DW_ASSERT_STREQ(json(DBL, "1.5"), "1.5");
    DW_ASSERT_STREQ(json(DBL, "1e+300"), "1e+300");
    DW_ASSERT_STREQ(json(DBL, "NaN"), "\"NaN\"");
    DW_ASSERT_STREQ(json(DBL, "Infinity"), "\"INF\"");
    DW_ASSERT_STREQ(json(DBL, "-Infinity"), "\"-INF\"");
    DW_ASSERT_STREQ(key(DBL, "NaN"), "NaN");
    DW_ASSERT_STREQ(key(DBL, "-Infinity"), "-INF");
    DW_ASSERT_STREQ(key(DBL, "2.5e+10"), "2.5e%2B10");
}

static void test_booleans(void)
{
    DW_ASSERT_STREQ(json(BOOL, "t"), "true");
    DW_ASSERT_STREQ(json(BOOL, "f"), "false");
    DW_ASSERT_STREQ(json(BOOL, "TRUE"), "true");
    DW_ASSERT_STREQ(json(BOOL, "no"), "false");
    DW_ASSERT_STREQ(json(BOOL, "1"), "true");
    DW_ASSERT_STREQ(key(BOOL, "on"), "true");
    DW_ASSERT_CONTAINS(json(BOOL, "maybe"), "expected a boolean");
}

static void test_dates_times(void)
{
    DW_ASSERT_STREQ(json(DATE, "2024-02-29"), "\"2024-02-29\"");
    DW_ASSERT_STREQ(key(DATE, "2024-06-01"), "2024-06-01");
    DW_ASSERT_CONTAINS(json(DATE, "2023-02-29"), "YYYY-MM-DD");
    DW_ASSERT_CONTAINS(json(DATE, "1900-02-29"), "YYYY-MM-DD");
    DW_ASSERT_STREQ(json(DATE, "2000-02-29"), "\"2000-02-29\"");
    DW_ASSERT_CONTAINS(json(DATE, "2024-6-1"), "YYYY-MM-DD");
    DW_ASSERT_CONTAINS(json(DATE, "2024-13-01"), "YYYY-MM-DD");
    DW_ASSERT_CONTAINS(json(DATE, "0044-03-15 BC"), "YYYY-MM-DD");
    DW_ASSERT_CONTAINS(json(DATE, "infinity"), "YYYY-MM-DD");

    DW_ASSERT_STREQ(json(DTO, "2024-06-01 12:00:00+00"), "\"2024-06-01T12:00:00Z\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01 12:00:00.123456+00"), "\"2024-06-01T12:00:00.123456Z\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01T12:00:00+05:30"), "\"2024-06-01T12:00:00+05:30\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01 12:00:00-07"), "\"2024-06-01T12:00:00-07:00\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01 12:00:00-0330"), "\"2024-06-01T12:00:00-03:30\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01 12:00"), "\"2024-06-01T12:00:00Z\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01T12:00:00Z"), "\"2024-06-01T12:00:00Z\"");
    DW_ASSERT_STREQ(json(DTO, "2024-06-01"), "\"2024-06-01T00:00:00Z\"");
    DW_ASSERT_STREQ(key(DTO, "2024-06-01 12:00:00+05:30"), "2024-06-01T12:00:00%2B05:30");
    DW_ASSERT_STREQ(key(DTO, "2024-06-01 12:00:00+00"), "2024-06-01T12:00:00Z");
    DW_ASSERT_CONTAINS(json(DTO, "1850-01-01 00:00:00+00:53:28"), "offset with seconds");
    DW_ASSERT_CONTAINS(json(DTO, "infinity"), "not a valid Edm.DateTimeOffset");
    DW_ASSERT_CONTAINS(json(DTO, "2024-06-01 25:00:00+00"), "not a valid");
    DW_ASSERT_CONTAINS(json(DTO, "2024-06-01 12:00:00 BC"), "not a valid");
    DW_ASSERT_CONTAINS(json(DTO, "2024-06-01 12:00:00.1234567890123+00"), "not a valid");

    DW_ASSERT_STREQ(json(TOD, "12:34:56.789"), "\"12:34:56.789\"");
    DW_ASSERT_STREQ(json(TOD, "08:15"), "\"08:15:00\"");
    DW_ASSERT_STREQ(key(TOD, "23:59:59"), "23:59:59");
    DW_ASSERT_CONTAINS(json(TOD, "24:00:00"), "HH:MM:SS");
    DW_ASSERT_CONTAINS(json(TOD, "12:00:00+02"), "HH:MM:SS");
}

static void test_guid_binary_duration(void)
{
    DW_ASSERT_STREQ(key(GUID, "01234567-89AB-cdef-0123-456789ABCDEF"),
                    "01234567-89ab-cdef-0123-456789abcdef");
    DW_ASSERT_STREQ(json(GUID, "01234567-89ab-cdef-0123-456789abcdef"),
                    "\"01234567-89ab-cdef-0123-456789abcdef\"");
    DW_ASSERT_CONTAINS(json(GUID, "0123456789abcdef0123456789abcdef"), "8-4-4-4-12");
    DW_ASSERT_CONTAINS(json(GUID, "{01234567-89ab-cdef-0123-456789abcdef}"), "8-4-4-4-12");
    DW_ASSERT_CONTAINS(json(GUID, "01234567-89ab-cdef-0123-456789abcdeg"), "8-4-4-4-12");

    DW_ASSERT_STREQ(json(BIN, "\\x"), "\"\"");
    DW_ASSERT_STREQ(json(BIN, "\\x0102ff"), "\"AQL_\"");
    DW_ASSERT_STREQ(json(BIN, "\\xfbff"), "\"-_8\"");
    DW_ASSERT_STREQ(json(BIN, "\\x66"), "\"Zg\"");
    DW_ASSERT_STREQ(key(BIN, "\\x6666"), "binary'ZmY'");
    DW_ASSERT_CONTAINS(json(BIN, "\\x0"), "hex form");
    DW_ASSERT_CONTAINS(json(BIN, "plain"), "hex form");
    DW_ASSERT_CONTAINS(json(BIN, ""), "hex form");

    DW_ASSERT_STREQ(json(DUR, "P1DT2H3M4.5S"), "\"P1DT2H3M4.5S\"");
    DW_ASSERT_STREQ(json(DUR, "-PT5M"), "\"-PT5M\"");
    DW_ASSERT_STREQ(key(DUR, "P2D"), "duration'P2D'");
    DW_ASSERT_CONTAINS(json(DUR, "1 day 02:00:00"), "ISO 8601");
    DW_ASSERT_CONTAINS(json(DUR, "P"), "ISO 8601");
    DW_ASSERT_CONTAINS(json(DUR, "PT"), "ISO 8601");
    DW_ASSERT_CONTAINS(json(DUR, "P1H"), "ISO 8601");
    DW_ASSERT_CONTAINS(json(DUR, "PT1D"), "ISO 8601");
    DW_ASSERT_CONTAINS(json(DUR, "PT1S2M"), "ISO 8601");
}

static void test_unsupported_keys(void)
{
    DW_ASSERT_CONTAINS(key("NS.Color", DW_ODATA_ENUM, "Red"), "cannot write in a URL");
    DW_ASSERT_CONTAINS(key("Edm.Stream", DW_ODATA_OTHER, "x"), "cannot write in a URL");
}

static const struct dw_cunit_test tests[] = {
    {"string keys: quotes doubled, percent-encoded", test_string_keys},
    {"strings in JSON", test_string_json},
    {"integers", test_integers},
    {"decimals and doubles", test_decimals_doubles},
    {"booleans", test_booleans},
    {"dates, timestamps, times of day", test_dates_times},
    {"GUIDs, binary, durations", test_guid_binary_duration},
    {"types that cannot be keys", test_unsupported_keys},
};

DW_CUNIT_MAIN("odata encode", tests)
