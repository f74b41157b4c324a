/*
 * Unit tests of the small pieces of bridge/common everything else stands on:
 * the error record (first error wins, prefixes, truncation that keeps UTF-8
 * valid), the buffer (growth, sticky failure), the arena (alignment, large
 * blocks, reset), logging (sink, levels) and UTF-8 (checked exhaustively
 * against an independent reference for every 1-, 2- and 3-byte sequence).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_buf.h"
#include "bridge/common/dw_error.h"
#include "bridge/common/dw_log.h"
#include "bridge/common/dw_utf8.h"
#include "tests/unit/common/dw_cunit.h"

/* Let the deliberately impossible allocations below fail instead of aborting under ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static int utf8_ok(const char *s)
{
    return dw_utf8_validate(s, strlen(s), NULL) == DW_UTF8_OK;
}

/* ---- errors ---- */

static void test_error_first_wins(void)
{
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_FALSE(dw_error_is_set(&err));
    CU_ASSERT_EQUAL(dw_error_set(&err, DW_ERR_CONFIG, "first %d", 1), DW_ERR_CONFIG);
    CU_ASSERT_TRUE(dw_error_is_set(&err));
    /* the second error is returned to its caller but does not replace the first */
    CU_ASSERT_EQUAL(dw_error_set(&err, DW_ERR_TARGET, "second"), DW_ERR_TARGET);
    CU_ASSERT_EQUAL(err.code, DW_ERR_CONFIG);
    DW_ASSERT_STREQ(err.message, "first 1");

    dw_error_detail(&err, "Detail %s.", "one");
    dw_error_detail(&err, "Detail two.");
    dw_error_hint(&err, "Hint one.");
    dw_error_hint(&err, "Hint two.");
    dw_error_sqlstate(&err, "23505");
    dw_error_sqlstate(&err, "40001");
    DW_ASSERT_STREQ(err.detail, "Detail one.");
    DW_ASSERT_STREQ(err.hint, "Hint one.");
    DW_ASSERT_STREQ(err.sqlstate, "23505");

    dw_error_clear(&err);
    CU_ASSERT_FALSE(dw_error_is_set(&err));
    CU_ASSERT_EQUAL(err.message[0], '\0');
}

static void test_error_null_record(void)
{
    /* callers that do not care pass NULL and still get the code back */
    CU_ASSERT_EQUAL(dw_error_set(NULL, DW_ERR_LIMIT, "x"), DW_ERR_LIMIT);
    CU_ASSERT_FALSE(dw_error_is_set(NULL));
    dw_error_clear(NULL);
    dw_error_detail(NULL, "x");
    dw_error_hint(NULL, "x");
    dw_error_sqlstate(NULL, "00000");
    dw_error_prefix(NULL, "x");
}

static void test_error_prefix(void)
{
    struct dw_error err;

    dw_error_clear(&err);
    dw_error_set(&err, DW_ERR_CONFIG, "/fields/2/values: expected an object");
    dw_error_prefix(&err, "maps/%s.json", "customers");
    DW_ASSERT_STREQ(err.message, "maps/customers.json: /fields/2/values: expected an object");
    CU_ASSERT_EQUAL(err.code, DW_ERR_CONFIG);

    /* a prefix never overflows the record and keeps the start of the message */
    {
        char longp[600];

        memset(longp, 'p', sizeof(longp) - 1);
        longp[sizeof(longp) - 1] = '\0';
        dw_error_prefix(&err, "%s", longp);
        CU_ASSERT_EQUAL(strlen(err.message), sizeof(err.message) - 1);
        CU_ASSERT_EQUAL(err.message[0], 'p');
    }
}

static void test_error_truncation_keeps_utf8(void)
{
    struct dw_error err;
    char text[1200];
    size_t pos = 0;

    /* 3-byte characters placed so that a naive cut lands inside one */
    text[pos++] = 'x';
    while (pos + 3 < sizeof(text)) {
        memcpy(text + pos, "\xE2\x82\xAC", 3);
        pos += 3;
    }
    text[pos] = '\0';

    for (int shift = 0; shift < 4; shift++) {
        dw_error_clear(&err);
        dw_error_set(&err, DW_ERR_TARGET, "%.*s%s", shift, "abc", text);
        CU_ASSERT(strlen(err.message) < sizeof(err.message));
        CU_ASSERT(strlen(err.message) >= sizeof(err.message) - 4);
        CU_ASSERT(utf8_ok(err.message));
        dw_error_detail(&err, "%.*s%s", shift, "abc", text);
        CU_ASSERT(utf8_ok(err.detail));
        dw_error_prefix(&err, "%.*s\xC3\xA9", shift, "abc");
        CU_ASSERT(utf8_ok(err.message));
    }
}

static void test_errcode_names(void)
{
    dw_errcode codes[] = {DW_OK, DW_ERR_NOMEM, DW_ERR_CONFIG, DW_ERR_PROTOCOL, DW_ERR_CONNECT,
                          DW_ERR_TARGET, DW_ERR_TIMEOUT, DW_ERR_LIMIT, DW_ERR_INTERNAL,
                          DW_ERR_MAP, DW_ERR_THROTTLED};
    size_t n = sizeof(codes) / sizeof(codes[0]);

    /* append-only numbering: the values the wire and logs rely on */
    CU_ASSERT_EQUAL(DW_ERR_PROTOCOL, 3);
    CU_ASSERT_EQUAL(DW_ERR_LIMIT, 7);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_STRING_NOT_EQUAL(dw_errcode_name(codes[i]), "unknown");
        for (size_t j = 0; j < i; j++)
            CU_ASSERT_STRING_NOT_EQUAL(dw_errcode_name(codes[i]), dw_errcode_name(codes[j]));
    }
    DW_ASSERT_STREQ(dw_errcode_name(DW_ERR_PROTOCOL), "protocol");
    DW_ASSERT_STREQ(dw_errcode_name((dw_errcode) 999), "unknown");
}

/* ---- buffer ---- */

static void test_buf_growth(void)
{
    struct dw_buf b;
    char expect[20000];
    size_t n = 0;

    dw_buf_init(&b);
    CU_ASSERT_PTR_NULL(b.data);
    for (int i = 0; n + 16 < sizeof(expect); i++) {
        char piece[16];
        int len = snprintf(piece, sizeof(piece), "%d,", i);

        if (i % 3 == 0)
            dw_buf_puts(&b, piece);
        else if (i % 3 == 1)
            dw_buf_printf(&b, "%d,", i);
        else
            dw_buf_append(&b, piece, (size_t) len);
        memcpy(expect + n, piece, (size_t) len);
        n += (size_t) len;
    }
    expect[n] = '\0';
    CU_ASSERT_FALSE(dw_buf_failed(&b));
    CU_ASSERT_EQUAL(b.len, n);
    CU_ASSERT(b.cap > b.len);
    CU_ASSERT_EQUAL(b.data[b.len], '\0');
    CU_ASSERT_EQUAL(memcmp(b.data, expect, n + 1), 0);

    dw_buf_putc(&b, '!');
    CU_ASSERT_EQUAL(b.data[b.len - 1], '!');
    dw_buf_append(&b, NULL, 0);
    CU_ASSERT_EQUAL(b.len, n + 1);

    /* reset keeps the memory */
    {
        size_t cap = b.cap;

        dw_buf_reset(&b);
        CU_ASSERT_EQUAL(b.len, 0);
        CU_ASSERT_EQUAL(b.cap, cap);
        DW_ASSERT_STREQ(b.data, "");
    }
    dw_buf_cleanup(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.cap, 0);
}

static void test_buf_failure_is_sticky(void)
{
    struct dw_buf b;

    dw_buf_init(&b);
    dw_buf_puts(&b, "abc");
    /* a size that overflows the length check */
    CU_ASSERT_FALSE(dw_buf_reserve(&b, SIZE_MAX - 1));
    CU_ASSERT_TRUE(dw_buf_failed(&b));
    dw_buf_puts(&b, "def");
    dw_buf_printf(&b, "%d", 42);
    CU_ASSERT_EQUAL(b.len, 3);
    DW_ASSERT_STREQ(b.data, "abc");
    dw_buf_reset(&b);
    CU_ASSERT_FALSE(dw_buf_failed(&b));

    /* a size that passes the check but that no allocator can provide */
    CU_ASSERT_FALSE(dw_buf_reserve(&b, SIZE_MAX / 4));
    CU_ASSERT_TRUE(dw_buf_failed(&b));
    dw_buf_reset(&b);
    dw_buf_puts(&b, "ok");
    CU_ASSERT_FALSE(dw_buf_failed(&b));
    DW_ASSERT_STREQ(b.data, "ok");
    dw_buf_cleanup(&b);
}

static void test_buf_take(void)
{
    struct dw_buf b;
    char *p;

    dw_buf_init(&b);
    p = dw_buf_take(&b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    DW_ASSERT_STREQ(p, "");
    free(p);

    dw_buf_puts(&b, "hello");
    p = dw_buf_take(&b);
    DW_ASSERT_STREQ(p, "hello");
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    free(p);
    dw_buf_cleanup(&b);
}

/* ---- arena ---- */

static void test_arena_alloc(void)
{
    struct dw_arena a;
    char *blocks[200];

    dw_arena_init(&a, 256);
    for (int i = 0; i < 200; i++) {
        size_t n = (size_t) (i * 7 % 61) + 1;

        blocks[i] = dw_arena_alloc(&a, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(blocks[i]);
        CU_ASSERT_EQUAL((uintptr_t) blocks[i] % _Alignof(max_align_t), 0);
        memset(blocks[i], i, n);
    }
    /* earlier blocks are intact: allocations never overlap */
    for (int i = 0; i < 200; i++)
        CU_ASSERT_EQUAL((unsigned char) blocks[i][0], (unsigned char) i);

    /* larger than a chunk */
    {
        char *big = dw_arena_alloc(&a, 10000);

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, 0xAB, 10000);
        CU_ASSERT(a.total >= 10000);
    }
    {
        unsigned char *z = dw_arena_zalloc(&a, 333);
        int zero = 1;

        CU_ASSERT_PTR_NOT_NULL_FATAL(z);
        for (int i = 0; i < 333; i++)
            zero &= z[i] == 0;
        CU_ASSERT(zero);
    }
    DW_ASSERT_STREQ(dw_arena_strdup(&a, "copy"), "copy");
    DW_ASSERT_STREQ(dw_arena_strndup(&a, "copy me", 4), "copy");

    /* impossible sizes fail cleanly instead of wrapping around */
    CU_ASSERT_PTR_NULL(dw_arena_alloc(&a, SIZE_MAX));
    CU_ASSERT_PTR_NULL(dw_arena_alloc(&a, SIZE_MAX - 64));
    CU_ASSERT_PTR_NULL(dw_arena_alloc(&a, SIZE_MAX / 4));
    CU_ASSERT_PTR_NULL(dw_arena_strndup(&a, "x", SIZE_MAX));
    dw_arena_cleanup(&a);
    CU_ASSERT_PTR_NULL(a.head);
}

static void test_arena_reset(void)
{
    struct dw_arena a;

    dw_arena_init(&a, 0);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 1000; i++) {
            char *p = dw_arena_alloc(&a, 100);

            CU_ASSERT_PTR_NOT_NULL_FATAL(p);
            memset(p, 'x', 100);
        }
        CU_ASSERT(a.total >= 100000);
        dw_arena_reset(&a);
        CU_ASSERT_EQUAL(a.total, 0);
        CU_ASSERT_PTR_NOT_NULL(a.head);
    }
    dw_arena_cleanup(&a);

    /* reset of an unused arena */
    dw_arena_init(&a, 0);
    dw_arena_reset(&a);
    CU_ASSERT_PTR_NOT_NULL(dw_arena_alloc(&a, 0));
    dw_arena_cleanup(&a);
}

/* ---- log ---- */

struct captured {
    int count;
    dw_log_level level;
    char line[4096];
};

static void capture(dw_log_level level, const char *line, void *arg)
{
    struct captured *c = arg;

    c->count++;
    c->level = level;
    snprintf(c->line, sizeof(c->line), "%s", line);
}

static void test_log_sink_and_levels(void)
{
    struct captured c = {0};
    dw_log_level saved = dw_log_get_level();
    char big[3000];

    dw_log_set_sink(capture, &c);
    dw_log_set_level(DW_LOG_INFO);
    dw_debug("not shown %d", 1);
    CU_ASSERT_EQUAL(c.count, 0);
    dw_info("batch %s applied", "b1");
    CU_ASSERT_EQUAL(c.count, 1);
    CU_ASSERT_EQUAL(c.level, DW_LOG_INFO);
    DW_ASSERT_STREQ(c.line, "batch b1 applied");
    dw_warn("w");
    CU_ASSERT_EQUAL(c.level, DW_LOG_WARNING);
    dw_logerr("e");
    CU_ASSERT_EQUAL(c.level, DW_LOG_ERROR);
    CU_ASSERT_EQUAL(c.count, 3);

    dw_log_set_level(DW_LOG_ERROR);
    CU_ASSERT_EQUAL(dw_log_get_level(), DW_LOG_ERROR);
    dw_warn("dropped");
    CU_ASSERT_EQUAL(c.count, 3);
    dw_log_set_level(DW_LOG_DEBUG);
    dw_debug("shown");
    CU_ASSERT_EQUAL(c.count, 4);
    DW_ASSERT_STREQ(c.line, "shown");

    /* an overlong line is cut, not overflowed */
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    dw_info("%s", big);
    CU_ASSERT(strlen(c.line) < sizeof(big) - 1);
    CU_ASSERT(strlen(c.line) > 1000);

    dw_log_set_sink(NULL, NULL);
    dw_log_set_level(saved);
}

static void test_log_level_names(void)
{
    dw_log_level l;

    CU_ASSERT_TRUE(dw_log_parse_level("debug", &l));
    CU_ASSERT_EQUAL(l, DW_LOG_DEBUG);
    CU_ASSERT_TRUE(dw_log_parse_level("WARNING", &l));
    CU_ASSERT_EQUAL(l, DW_LOG_WARNING);
    CU_ASSERT_TRUE(dw_log_parse_level("Error", &l));
    CU_ASSERT_EQUAL(l, DW_LOG_ERROR);
    CU_ASSERT_FALSE(dw_log_parse_level("verbose", &l));
    CU_ASSERT_FALSE(dw_log_parse_level("", &l));
    DW_ASSERT_STREQ(dw_log_level_name(DW_LOG_INFO), "info");
    DW_ASSERT_STREQ(dw_log_level_name((dw_log_level) 42), "unknown");
}

/* ---- UTF-8 ---- */

/*
 * An independent reference: decode by bit pattern, then apply RFC 3629's
 * rules as three separate checks (shortest form, no surrogates, range).
 * Returns the sequence length, or 0 when invalid.
 */
static size_t reference_utf8(const unsigned char *s, size_t len)
{
    size_t n;
    uint32_t cp, min;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2; cp = s[0] & 0x1F; min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3; cp = s[0] & 0x0F; min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4; cp = s[0] & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    return n;
}

static void test_utf8_exhaustive(void)
{
    unsigned mismatches = 0;

    /* every sequence of one to three bytes */
    for (uint32_t v = 0; v < (1u << 24); v++) {
        unsigned char s[3] = {(unsigned char) (v >> 16), (unsigned char) (v >> 8),
                              (unsigned char) v};
        size_t want = reference_utf8(s, 3), got = 0;
        uint32_t cp;

        if (dw_utf8_decode((const char *) s, 3, &cp, &got) != DW_UTF8_OK)
            got = 0;
        if (got != want && mismatches++ < 5)
            fprintf(stderr, "\n    %02X %02X %02X: got %zu want %zu", s[0], s[1], s[2], got, want);
    }
    /* four-byte sequences for every lead and second byte, sampled below that */
    for (uint32_t v = 0; v < (1u << 16); v++) {
        for (uint32_t t = 0; t < 256; t += 5) {
            unsigned char s[4] = {(unsigned char) (v >> 8), (unsigned char) v, (unsigned char) t,
                                  (unsigned char) (t * 7 + 0x80)};
            size_t want = reference_utf8(s, 4), got = 0;
            uint32_t cp;

            if (s[0] < 0xF0)
                break;
            if (dw_utf8_decode((const char *) s, 4, &cp, &got) != DW_UTF8_OK)
                got = 0;
            if (got != want && mismatches++ < 10)
                fprintf(stderr, "\n    %02X %02X %02X %02X: got %zu want %zu", s[0], s[1], s[2],
                        s[3], got, want);
        }
    }
    CU_ASSERT_EQUAL(mismatches, 0);
}

static void test_utf8_encode_all_scalars(void)
{
    unsigned bad = 0;

    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        char out[4];
        size_t n = dw_utf8_encode(cp, out), seqlen = 0;
        uint32_t back = 0;

        if (cp >= 0xD800 && cp <= 0xDFFF) {
            bad += n != 0;
            continue;
        }
        if (n == 0 || dw_utf8_decode(out, n, &back, &seqlen) != DW_UTF8_OK || back != cp ||
            seqlen != n)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    {
        char out[4];

        CU_ASSERT_EQUAL(dw_utf8_encode(0x110000, out), 0);
    }
}

static void test_utf8_statuses(void)
{
    static const struct {
        const char *s;
        dw_utf8_status st;
        size_t at;
    } cases[] = {
        {"ok \xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", DW_UTF8_OK, 0},
        {"a\x80", DW_UTF8_INVALID_BYTE, 1},
        {"ab\xFF", DW_UTF8_INVALID_BYTE, 2},
        {"\xF8\x88\x80\x80\x80", DW_UTF8_INVALID_BYTE, 0},
        {"\xC0\xAF", DW_UTF8_OVERLONG, 0},
        {"\xC1\xBF", DW_UTF8_OVERLONG, 0},
        {"\xE0\x80\xAF", DW_UTF8_OVERLONG, 0},
        {"\xF0\x80\x80\xAF", DW_UTF8_OVERLONG, 0},
        {"\xED\xA0\x80", DW_UTF8_SURROGATE, 0},
        {"x\xED\xBF\xBF", DW_UTF8_SURROGATE, 1},
        {"\xF4\x90\x80\x80", DW_UTF8_TOO_LARGE, 0},
        {"\xF5\x80\x80\x80", DW_UTF8_TOO_LARGE, 0},
        {"\xC3", DW_UTF8_TRUNCATED, 0},
        {"\xE2\x82", DW_UTF8_TRUNCATED, 0},
        {"\xF0\x9F\x98", DW_UTF8_TRUNCATED, 0},
        {"\xE2\x82x", DW_UTF8_TRUNCATED, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t at = 99;
        dw_utf8_status st = dw_utf8_validate(cases[i].s, strlen(cases[i].s), &at);

        CU_ASSERT_EQUAL(st, cases[i].st);
        if (st != DW_UTF8_OK)
            CU_ASSERT_EQUAL(at, cases[i].at);
        CU_ASSERT_STRING_NOT_EQUAL(dw_utf8_status_text(cases[i].st), "unknown");
    }
    DW_ASSERT_STREQ(dw_utf8_status_text(DW_UTF8_OVERLONG), "overlong encoding");
}

static void test_utf8_boundary(void)
{
    const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";   /* 1 + 2 + 3 + 4 bytes */
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10};

    for (size_t len = 0; len <= 10; len++)
        CU_ASSERT_EQUAL(dw_utf8_boundary(s, len), want[len]);
}

static const struct dw_cunit_test tests[] = {
    {"error: first error wins", test_error_first_wins},
    {"error: NULL record", test_error_null_record},
    {"error: prefix", test_error_prefix},
    {"error: truncation keeps UTF-8 valid", test_error_truncation_keeps_utf8},
    {"error: code names", test_errcode_names},
    {"buf: growth", test_buf_growth},
    {"buf: failure is sticky until reset", test_buf_failure_is_sticky},
    {"buf: take", test_buf_take},
    {"arena: alloc, alignment, large blocks", test_arena_alloc},
    {"arena: reset", test_arena_reset},
    {"log: sink and levels", test_log_sink_and_levels},
    {"log: level names", test_log_level_names},
    {"utf8: exhaustive against a reference", test_utf8_exhaustive},
    {"utf8: encode every scalar value", test_utf8_encode_all_scalars},
    {"utf8: statuses and offsets", test_utf8_statuses},
    {"utf8: boundary", test_utf8_boundary},
};

DW_CUNIT_MAIN("common", tests)
