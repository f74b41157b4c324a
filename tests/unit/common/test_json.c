/*
 * Unit tests of the strict JSON parser: RFC 8259 acceptance and rejection
 * (a table of inputs, each rejection with its message fragment and byte
 * offset), the tree it builds, limits, duplicate keys in small and large
 * objects, and the message helpers that keep paths one line of valid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_utf8.h"
#include "tests/unit/common/dw_cunit.h"

static struct dw_arena arena;
static struct dw_error err;

/* Parse a NUL-free input copied to an exact-size heap block, so ASan sees over-reads. */
static dw_errcode parse_n(const char *s, size_t len, const struct dw_json_limits *limits,
                          struct dw_json **out)
{
    char *copy = malloc(len ? len : 1);
    dw_errcode rc;

    memcpy(copy, s, len);
    dw_arena_reset(&arena);
    dw_error_clear(&err);
    rc = dw_json_parse(copy, len, limits, &arena, out, &err);
    free(copy);
    return rc;
}

static dw_errcode parse(const char *s, struct dw_json **out)
{
    return parse_n(s, strlen(s), NULL, out);
}

static void test_accepts(void)
{
    static const char *const ok[] = {
        "{}", "[]", "0", "-0", "1", "-1", "0.5", "-0.0e-0", "1E+2", "1e-2", "123456789012345678901234567890",
        "\"\"", "\"x\"", "true", "false", "null", " \t\r\n[ \t\r\n] \t\r\n",
        "[1,\"a\",true,false,null,{},[]]", "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\\uDBFF\\uDFFF\"",
        "\"\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\"",
        "\"\x7F\"", "{\"\":1}", "{\"a\":1,\"A\":2,\"a \":3}",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct dw_json *v;
        dw_errcode rc = parse(ok[i], &v);

        if (rc != DW_OK)
            fprintf(stderr, "\n    rejected %s: %s", ok[i], err.message);
        CU_ASSERT_EQUAL(rc, DW_OK);
        CU_ASSERT_PTR_NOT_NULL(v);
    }
}

static void test_rejects(void)
{
    static const struct {
        const char *input;
        dw_errcode code;
        const char *fragment;
    } bad[] = {
        {"", DW_ERR_PROTOCOL, "unexpected end of input, expected a value at byte 0"},
        {" \n ", DW_ERR_PROTOCOL, "unexpected end of input, expected a value at byte 3"},
        {"\xEF\xBB\xBF{}", DW_ERR_PROTOCOL, "unexpected byte 0xEF, expected a value at byte 0"},
        {"{} x", DW_ERR_PROTOCOL, "unexpected 'x' after the end of the JSON value at byte 3"},
        {"[] []", DW_ERR_PROTOCOL, "after the end of the JSON value at byte 3"},
        {"01", DW_ERR_PROTOCOL, "leading zeros are not allowed at byte 0"},
        {"[-012]", DW_ERR_PROTOCOL, "/0: invalid number: leading zeros are not allowed at byte 1"},
        {"-", DW_ERR_PROTOCOL, "invalid number: expected a digit at byte 1"},
        {"-a", DW_ERR_PROTOCOL, "invalid number: expected a digit at byte 1"},
        {"1.", DW_ERR_PROTOCOL, "expected a digit after the decimal point at byte 2"},
        {"1.e5", DW_ERR_PROTOCOL, "expected a digit after the decimal point at byte 2"},
        {"1e", DW_ERR_PROTOCOL, "expected a digit in the exponent at byte 2"},
        {"1e+", DW_ERR_PROTOCOL, "expected a digit in the exponent at byte 3"},
        {".5", DW_ERR_PROTOCOL, "unexpected '.', expected a value at byte 0"},
        {"+1", DW_ERR_PROTOCOL, "unexpected '+'"},
        {"NaN", DW_ERR_PROTOCOL, "unexpected 'N'"},
        {"Infinity", DW_ERR_PROTOCOL, "unexpected 'I'"},
        {"0x10", DW_ERR_PROTOCOL, "unexpected 'x' after the end"},
        {"tru", DW_ERR_PROTOCOL, "invalid literal: expected \"true\" at byte 0"},
        {"nul", DW_ERR_PROTOCOL, "invalid literal: expected \"null\""},
        {"True", DW_ERR_PROTOCOL, "unexpected 'T'"},
        {"[1,]", DW_ERR_PROTOCOL, "/1: unexpected ']', expected a value at byte 3"},
        {"[,1]", DW_ERR_PROTOCOL, "unexpected ','"},
        {"[1 2]", DW_ERR_PROTOCOL, "unexpected '2', expected ',' or ']' at byte 3"},
        {"[1", DW_ERR_PROTOCOL, "unexpected end of input, expected ',' or ']' at byte 2"},
        {"{\"a\":1,}", DW_ERR_PROTOCOL, "expected a member name in double quotes, found '}' at byte 7"},
        {"{a:1}", DW_ERR_PROTOCOL, "expected a member name in double quotes, found 'a' at byte 1"},
        {"{'a':1}", DW_ERR_PROTOCOL, "found '''"},
        {"{\"a\" 1}", DW_ERR_PROTOCOL, "expected ':' after a member name, found '1' at byte 5"},
        {"{\"a\":1 \"b\":2}", DW_ERR_PROTOCOL, "/a: unexpected '\"', expected ',' or '}' at byte 7"},
        {"{\"a\":}", DW_ERR_PROTOCOL, "/a: unexpected '}', expected a value at byte 5"},
        {"{", DW_ERR_PROTOCOL, "found end of input at byte 1"},
        {"{\"a\"", DW_ERR_PROTOCOL, "expected ':' after a member name, found end of input"},
        {"]", DW_ERR_PROTOCOL, "unexpected ']', expected a value at byte 0"},
        {"\"abc", DW_ERR_PROTOCOL, "unterminated string at byte 0"},
        {"\"abc\\", DW_ERR_PROTOCOL, "unterminated string at byte 0"},
        {"\"a\\x\"", DW_ERR_PROTOCOL, "invalid escape: backslash followed by 'x' at byte 2"},
        {"\"a\\'\"", DW_ERR_PROTOCOL, "invalid escape: backslash followed by '''"},
        {"\"\\u12\"", DW_ERR_PROTOCOL, "invalid \\u escape: expected four hex digits at byte 1"},
        {"\"\\u12G4\"", DW_ERR_PROTOCOL, "invalid \\u escape"},
        {"\"\\uD800\"", DW_ERR_PROTOCOL, "lone surrogate \\uD800"},
        {"\"\\uD800\\u0041\"", DW_ERR_PROTOCOL, "lone surrogate \\uD800"},
        {"\"\\uDBFF\\uDBFF\"", DW_ERR_PROTOCOL, "lone surrogate \\uDBFF"},
        {"\"x\\uDC00\"", DW_ERR_PROTOCOL, "lone surrogate \\uDC00: a low surrogate must follow a high "
                                          "surrogate at byte 2"},
        {"\"\\u0000\"", DW_ERR_PROTOCOL, "string contains \\u0000, which is not supported"},
        {"{\"a\\u0000b\":1}", DW_ERR_PROTOCOL, "string contains \\u0000"},
        {"\"a\tb\"", DW_ERR_PROTOCOL, "unescaped control character 0x09 in string at byte 2"},
        {"\"\x1F\"", DW_ERR_PROTOCOL, "unescaped control character 0x1F"},
        {"\"\xC0\xAF\"", DW_ERR_PROTOCOL, "invalid UTF-8 in string (overlong encoding) at byte 1"},
        {"\"\xE0\x80\xAF\"", DW_ERR_PROTOCOL, "(overlong encoding)"},
        {"\"\xF0\x80\x80\xAF\"", DW_ERR_PROTOCOL, "(overlong encoding)"},
        {"\"\xED\xA0\x80\"", DW_ERR_PROTOCOL, "(surrogate code point) at byte 1"},
        {"\"\xF4\x90\x80\x80\"", DW_ERR_PROTOCOL, "(code point above U+10FFFF)"},
        {"\"\xC3\"", DW_ERR_PROTOCOL, "(truncated sequence) at byte 1"},
        {"\"ab\xE2\x82", DW_ERR_PROTOCOL, "(truncated sequence) at byte 3"},
        {"\"\x80\"", DW_ERR_PROTOCOL, "(invalid byte) at byte 1"},
        {"\"\xFF\"", DW_ERR_PROTOCOL, "(invalid byte)"},
        {"{\"a\":1,\"a\":2}", DW_ERR_PROTOCOL, "duplicate key \"a\" at byte 7"},
        {"{\"a\":1,\"\\u0061\":2}", DW_ERR_PROTOCOL, "duplicate key \"a\" at byte 7"},
        {"[{\"x\":{\"k\":1,\"j\":2,\"k\":3}}]", DW_ERR_PROTOCOL, "/0/x: duplicate key \"k\" at byte 19"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dw_json dummy, *v = &dummy;
        dw_errcode rc = parse(bad[i].input, &v);

        if (rc != bad[i].code)
            fprintf(stderr, "\n    case %zu (%s): code %d, message \"%s\"", i, bad[i].input,
                    (int) rc, err.message);
        CU_ASSERT_EQUAL(rc, bad[i].code);
        CU_ASSERT_EQUAL(err.code, bad[i].code);
        CU_ASSERT_PTR_NULL(v);
        DW_ASSERT_CONTAINS(err.message, bad[i].fragment);
    }
}

static void test_raw_nul_byte(void)
{
    struct dw_json *v;

    CU_ASSERT_EQUAL(parse_n("\"a\0b\"", 5, NULL, &v), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "string contains a NUL byte, which is not supported at byte 2");
    CU_ASSERT_EQUAL(parse_n("[1]\0", 4, NULL, &v), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "unexpected byte 0x00 after the end of the JSON value at byte 3");
}

static void test_tree(void)
{
    const char *src = "{\"s\":\"h\\u00e9llo\\n\",\"n\":-12.5e3,\"i\":42,\"t\":true,\"f\":false,"
                      "\"z\":null,\"a\":[1,[2],{}],\"o\":{\"k\":\"v\"}}";
    struct dw_json *root;
    const struct dw_json *v;
    int64_t i64;

    CU_ASSERT_EQUAL_FATAL(parse(src, &root), DW_OK);
    CU_ASSERT_EQUAL(root->type, DW_JSON_OBJECT);
    CU_ASSERT_EQUAL(root->len, 8);
    CU_ASSERT_EQUAL(root->offset, 0);
    /* members stay in input order */
    DW_ASSERT_STREQ(root->u.members[0].name, "s");
    DW_ASSERT_STREQ(root->u.members[7].name, "o");

    v = dw_json_find(root, "s");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, DW_JSON_STRING);
    DW_ASSERT_STREQ(v->u.string, "h\xC3\xA9llo\n");
    CU_ASSERT_EQUAL(v->len, 7);
    CU_ASSERT_EQUAL(v->offset, 5);

    v = dw_json_find(root, "n");
    CU_ASSERT_EQUAL(v->type, DW_JSON_NUMBER);
    CU_ASSERT_FALSE(v->integer);
    DW_ASSERT_STREQ(v->u.number, "-12.5e3");
    CU_ASSERT_FALSE(dw_json_get_int64(v, &i64));

    v = dw_json_find(root, "i");
    CU_ASSERT_TRUE(v->integer);
    CU_ASSERT_TRUE(dw_json_get_int64(v, &i64));
    CU_ASSERT_EQUAL(i64, 42);

    CU_ASSERT_EQUAL(dw_json_find(root, "t")->type, DW_JSON_BOOL);
    CU_ASSERT_TRUE(dw_json_find(root, "t")->u.boolean);
    CU_ASSERT_FALSE(dw_json_find(root, "f")->u.boolean);
    CU_ASSERT_EQUAL(dw_json_find(root, "z")->type, DW_JSON_NULL);

    v = dw_json_find(root, "a");
    CU_ASSERT_EQUAL(v->type, DW_JSON_ARRAY);
    CU_ASSERT_EQUAL_FATAL(v->len, 3);
    CU_ASSERT_EQUAL(v->u.items[1].type, DW_JSON_ARRAY);
    CU_ASSERT_EQUAL(v->u.items[1].len, 1);
    CU_ASSERT_EQUAL(v->u.items[2].type, DW_JSON_OBJECT);
    CU_ASSERT_EQUAL(v->u.items[2].len, 0);
    CU_ASSERT_PTR_NULL(v->u.items[2].u.members);

    v = dw_json_find(root, "o");
    DW_ASSERT_STREQ(dw_json_find(v, "k")->u.string, "v");
    CU_ASSERT_PTR_NULL(dw_json_find(v, "missing"));
    CU_ASSERT_PTR_NULL(dw_json_find(dw_json_find(root, "a"), "k"));
    CU_ASSERT_PTR_NULL(dw_json_find(NULL, "k"));
}

static void test_escapes_decode(void)
{
    struct dw_json *v;

    CU_ASSERT_EQUAL_FATAL(parse("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u007f\"", &v), DW_OK);
    CU_ASSERT_EQUAL(v->len, 10);
    CU_ASSERT_EQUAL(memcmp(v->u.string, "\"\\/\b\f\n\r\t\x01\x7F", 11), 0);

    CU_ASSERT_EQUAL_FATAL(parse("\"\\uD83D\\uDE00|\\uDBFF\\uDFFF|\\u0800|\\u07FF\"", &v), DW_OK);
    DW_ASSERT_STREQ(v->u.string, "\xF0\x9F\x98\x80|\xF4\x8F\xBF\xBF|\xE0\xA0\x80|\xDF\xBF");
}

static void test_int64(void)
{
    static const struct {
        const char *text;
        bool ok;
        int64_t value;
    } cases[] = {
        {"0", true, 0},
        {"-0", true, 0},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"99999999999999999999999", false, 0},
        {"1.0", false, 0},
        {"1e3", false, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dw_json *v;
        int64_t got = 7;

        CU_ASSERT_EQUAL_FATAL(parse(cases[i].text, &v), DW_OK);
        CU_ASSERT_EQUAL(dw_json_get_int64(v, &got), cases[i].ok);
        if (cases[i].ok)
            CU_ASSERT_EQUAL(got, cases[i].value);
    }
    {
        struct dw_json *v;
        int64_t got;

        CU_ASSERT_EQUAL_FATAL(parse("\"1\"", &v), DW_OK);
        CU_ASSERT_FALSE(dw_json_get_int64(v, &got));
        CU_ASSERT_FALSE(dw_json_get_int64(NULL, &got));
    }
}

static void test_depth_limit(void)
{
    char doc[300];
    struct dw_json_limits limits = {0, 10};
    struct dw_json *v;
    size_t n = 0;

    /* ten levels are allowed, the eleventh is not */
    for (int i = 0; i < 10; i++) {
        if (i % 2) {
            doc[n++] = '[';
        } else {
            memcpy(doc + n, "{\"k\":", 5);
            n += 5;
        }
    }
    for (int i = 9; i >= 0; i--)
        doc[n++] = i % 2 ? ']' : '}';
    CU_ASSERT_EQUAL(parse_n(doc, n, &limits, &v), DW_OK);

    limits.max_depth = 9;
    CU_ASSERT_EQUAL(parse_n(doc, n, &limits, &v), DW_ERR_LIMIT);
    DW_ASSERT_CONTAINS(err.message, "/k/0/k/0/k/0/k/0/k: nesting depth exceeds the limit of 9 at byte");

    /* the default limit, with a deep array */
    memset(doc, '[', 65);
    memset(doc + 65, ']', 65);
    CU_ASSERT_EQUAL(parse_n(doc, 130, NULL, &v), DW_ERR_LIMIT);
    DW_ASSERT_CONTAINS(err.message, "nesting depth exceeds the limit of 64 at byte 64");
    CU_ASSERT_EQUAL(parse_n(doc + 1, 128, NULL, &v), DW_OK);
}

static void test_size_limit(void)
{
    struct dw_json_limits limits = {8, 0};
    struct dw_json *v;

    CU_ASSERT_EQUAL(parse_n("[1,2,3]", 7, &limits, &v), DW_OK);
    CU_ASSERT_EQUAL(parse_n("[1,2,3,4]", 9, &limits, &v), DW_ERR_LIMIT);
    DW_ASSERT_STREQ(err.message, "input of 9 bytes exceeds the limit of 8 bytes");
}

/* An object with n members named k0..k{n-1}, and optionally a repeat of one name. */
static char *make_object(size_t n, long dup_of, size_t *len)
{
    struct dw_buf b;

    dw_buf_init(&b);
    dw_buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        dw_buf_printf(&b, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    if (dup_of >= 0)
        dw_buf_printf(&b, ",\"k%ld\":0", dup_of);
    dw_buf_putc(&b, '}');
    *len = b.len;
    return dw_buf_take(&b);
}

static void test_duplicates_large_objects(void)
{
    struct dw_json *v;
    size_t len;
    char *doc;

    /* large enough to take the sorting path; no duplicates */
    doc = make_object(20000, -1, &len);
    CU_ASSERT_EQUAL(parse_n(doc, len, NULL, &v), DW_OK);
    CU_ASSERT_EQUAL(v->len, 20000);
    DW_ASSERT_STREQ(v->u.members[19999].name, "k19999");
    free(doc);

    doc = make_object(20000, 12345, &len);
    CU_ASSERT_EQUAL(parse_n(doc, len, NULL, &v), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "duplicate key \"k12345\"");
    free(doc);

    /* several duplicates: the first repeated member in input order is named, as pairwise would */
    {
        const char *small = "{\"b\":1,\"a\":1,\"c\":1,\"a\":2,\"b\":2}";
        char big[2048];
        int n = snprintf(big, sizeof(big), "{");

        for (int i = 0; i < 40; i++)
            n += snprintf(big + n, sizeof(big) - (size_t) n, "\"x%d\":0,", i);
        snprintf(big + n, sizeof(big) - (size_t) n, "%s", small + 1);
        CU_ASSERT_EQUAL(parse(small, &v), DW_ERR_PROTOCOL);
        DW_ASSERT_CONTAINS(err.message, "duplicate key \"a\"");
        CU_ASSERT_EQUAL(parse(big, &v), DW_ERR_PROTOCOL);
        DW_ASSERT_CONTAINS(err.message, "duplicate key \"a\"");
    }
}

static void test_large_array(void)
{
    struct dw_buf b;
    struct dw_json *v;
    int ok = 1;

    dw_buf_init(&b);
    dw_buf_putc(&b, '[');
    for (int i = 0; i < 100000; i++)
        dw_buf_printf(&b, "%s[\"v%d\",%d]", i ? "," : "", i, i);
    dw_buf_putc(&b, ']');
    CU_ASSERT_EQUAL_FATAL(parse_n(b.data, b.len, NULL, &v), DW_OK);
    CU_ASSERT_EQUAL_FATAL(v->len, 100000);
    for (int i = 0; i < 100000; i += 997) {
        char want[16];
        int64_t n;

        snprintf(want, sizeof(want), "v%d", i);
        ok &= strcmp(v->u.items[i].u.items[0].u.string, want) == 0;
        ok &= dw_json_get_int64(&v->u.items[i].u.items[1], &n) && n == i;
    }
    CU_ASSERT(ok);
    dw_buf_cleanup(&b);
}

static void test_long_strings(void)
{
    /* long runs exercise the eight-bytes-at-a-time scan, with specials at every position */
    char doc[200];
    struct dw_json *v;

    for (size_t at = 1; at < 150; at++) {
        memset(doc, 'a', sizeof(doc));
        doc[0] = '"';
        doc[at] = '\n';
        doc[160] = '"';
        CU_ASSERT_EQUAL(parse_n(doc, 161, NULL, &v), DW_ERR_PROTOCOL);
        memcpy(doc + at, "\\n", 2);
        CU_ASSERT_EQUAL(parse_n(doc, 161, NULL, &v), DW_OK);
        CU_ASSERT_EQUAL(v->len, 158);
        CU_ASSERT_EQUAL(v->u.string[at - 1], '\n');
        doc[at] = (char) 0xC3;
        doc[at + 1] = (char) 0xA9;
        CU_ASSERT_EQUAL(parse_n(doc, 161, NULL, &v), DW_OK);
        doc[at + 1] = 'a';
        CU_ASSERT_EQUAL(parse_n(doc, 161, NULL, &v), DW_ERR_PROTOCOL);
    }
}

static void test_error_paths(void)
{
    struct dw_json *v;

    /* JSON Pointer escaping of '/' and '~', control characters shown as '?' */
    CU_ASSERT_EQUAL(parse("{\"a/b~c\":{\"x\\ny\":[0,1,tru]}}", &v), DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "/a~1b~0c/x?y/2: invalid literal");
    /* long keys are shortened at a character boundary */
    CU_ASSERT_EQUAL(parse("{\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                          "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                          "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                          "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\":x}", &v),
                    DW_ERR_PROTOCOL);
    DW_ASSERT_CONTAINS(err.message, "\xC3\xA9...: unexpected 'x'");
    CU_ASSERT_EQUAL(dw_utf8_validate(err.message, strlen(err.message), NULL), DW_UTF8_OK);
}

static void test_message_helpers(void)
{
    char buf[64];

    strcpy(buf, "/changes/0");
    dw_json_path_append(buf, sizeof(buf), "a/b", 3);
    DW_ASSERT_STREQ(buf, "/changes/0/a~1b");
    buf[0] = '\0';
    dw_json_path_append(buf, sizeof(buf), "", 0);
    DW_ASSERT_STREQ(buf, "/");

    dw_json_quote(buf, sizeof(buf), "up\"s\\ert\x01\xC0", 10);
    DW_ASSERT_STREQ(buf, "\"up\\\"s\\\\ert??\"");

    /* tiny buffers never overflow and stay terminated */
    for (size_t size = 0; size < 12; size++) {
        char small[12];

        memset(small, 'Z', sizeof(small));
        dw_json_quote(small, size, "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC", 9);
        if (size > 0) {
            CU_ASSERT(strlen(small) < size);
            CU_ASSERT_EQUAL(dw_utf8_validate(small, strlen(small), NULL), DW_UTF8_OK);
        }
        CU_ASSERT_EQUAL(small[size], 'Z');   /* nothing written past the end */
        memset(small, 0, sizeof(small));
        dw_json_path_append(small, size, "\xE2\x82\xAC\xE2\x82\xAC", 6);
        if (size > 0)
            CU_ASSERT(strlen(small) < size);
    }
    DW_ASSERT_STREQ(dw_json_type_name(DW_JSON_NUMBER), "a number");
    DW_ASSERT_STREQ(dw_json_type_name(DW_JSON_OBJECT), "an object");
    DW_ASSERT_STREQ(dw_json_type_name(DW_JSON_NULL), "null");
}

static const struct dw_cunit_test tests[] = {
    {"accepts valid JSON", test_accepts},
    {"rejects invalid JSON with path and offset", test_rejects},
    {"rejects a raw NUL byte", test_raw_nul_byte},
    {"builds the tree", test_tree},
    {"decodes escapes", test_escapes_decode},
    {"int64 range", test_int64},
    {"depth limit", test_depth_limit},
    {"size limit", test_size_limit},
    {"duplicates in large objects", test_duplicates_large_objects},
    {"large array", test_large_array},
    {"long strings", test_long_strings},
    {"paths in messages", test_error_paths},
    {"message helpers", test_message_helpers},
};

static int run(void)
{
    int rc;

    dw_arena_init(&arena, 0);
    rc = dw_cunit_run("json", tests, sizeof(tests) / sizeof(tests[0]));
    dw_arena_cleanup(&arena);
    return rc;
}

int main(void)
{
    return run();
}
