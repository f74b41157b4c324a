/*
 * Unit tests of the wire format: the example of DESIGN.md section 4, round
 * trips (decode(encode(b)) == b, and re-encoding gives the same bytes) for
 * generated and hand-picked batches and verdicts, the exact escapes of the
 * encoder, and one test per class of malformed input asserting the JSON path
 * and message the user will see in the failed COMMIT.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"
#include "tests/unit/common/dw_cunit.h"
#include "tests/unit/common/wire_gen.h"

static struct dw_arena arena;
static struct dw_error err;

static dw_errcode decode_batch(const char *s, size_t len, struct dw_batch **out)
{
    char *copy = malloc(len ? len : 1);   /* exact size: ASan sees over-reads */
    dw_errcode rc;

    memcpy(copy, s, len);
    dw_error_clear(&err);
    rc = dw_wire_decode_batch(copy, len, &arena, out, &err);
    free(copy);
    return rc;
}

static dw_errcode decode_verdict(const char *s, struct dw_verdict **out)
{
    size_t len = strlen(s);
    char *copy = malloc(len ? len : 1);
    dw_errcode rc;

    memcpy(copy, s, len);
    dw_error_clear(&err);
    rc = dw_wire_decode_verdict(copy, len, &arena, out, &err);
    free(copy);
    return rc;
}

/*
 * encode, decode, compare; encode the decoded batch and compare bytes; and
 * check that the incremental writer produces exactly what encode_batch does.
 */
static bool round_trip(const struct dw_batch *b)
{
    struct dw_buf e1, e2, inc;
    struct dw_batch *d = NULL;
    char why[200] = "";
    bool ok = true;

    dw_buf_init(&e1);
    dw_buf_init(&e2);
    dw_buf_init(&inc);
    dw_error_clear(&err);
    if (dw_wire_encode_batch(b, &e1, &err) != DW_OK) {
        fprintf(stderr, "\n    encode: %s", err.message);
        ok = false;
        goto out;
    }
    if (decode_batch(e1.data, e1.len, &d) != DW_OK) {
        fprintf(stderr, "\n    decode: %s\n    input: %s", err.message, e1.data);
        ok = false;
        goto out;
    }
    if (!batches_equal(b, d, why, sizeof(why))) {
        fprintf(stderr, "\n    round trip differs: %s\n    input: %s", why, e1.data);
        ok = false;
        goto out;
    }
    if (dw_wire_encode_batch(d, &e2, &err) != DW_OK || e1.len != e2.len ||
        memcmp(e1.data, e2.data, e1.len) != 0) {
        fprintf(stderr, "\n    re-encoding differs");
        ok = false;
    }
    dw_wire_batch_begin(&inc, b->id, b->source_system, b->source_database, b->source_xid,
                        b->origin, b->deadline_ms);
    for (size_t i = 0; i < b->nchanges; i++)
        dw_wire_batch_change(&inc, b->changes[i].table, b->changes[i].op, &b->changes[i].old_row,
                             &b->changes[i].new_row);
    dw_wire_batch_end(&inc);
    if (dw_buf_failed(&inc) || inc.len != e1.len || memcmp(inc.data, e1.data, e1.len) != 0) {
        fprintf(stderr, "\n    incremental writer differs");
        ok = false;
    }
out:
    dw_buf_cleanup(&e1);
    dw_buf_cleanup(&e2);
    dw_buf_cleanup(&inc);
    return ok;
}

/* ---- decoding the reference example ---- */

static const char design_example[] =
    "{\"id\": \"7301234567890123456:16384:48113\",\n"
    " \"source\": {\"system\": \"7301234567890123456\", \"database\": \"erp\", \"xid\": \"48113\"},\n"
    " \"origin\": null, \"deadline_ms\": 29850,\n"
    " \"changes\": [\n"
    "  {\"table\": \"public.orders\", \"op\": \"insert\", \"new\": {\"id\": \"17\", \"status\": \"draft\", "
    "\"total\": \"12.50\"}},\n"
    "  {\"table\": \"public.orders\", \"op\": \"update\", \"old\": {\"id\": \"17\", \"status\": \"draft\", "
    "\"total\": \"12.50\"},\n"
    "                                            \"new\": {\"id\": \"17\", \"status\": \"confirmed\", "
    "\"total\": \"12.50\"}},\n"
    "  {\"table\": \"public.order_lines\", \"op\": \"delete\", \"old\": {\"order_id\": \"17\", \"line\": "
    "\"1\", \"qty\": \"2\"}}]}\n";

static void test_design_example(void)
{
    struct dw_batch *b;
    const struct dw_change *c;

    CU_ASSERT_EQUAL_FATAL(decode_batch(design_example, strlen(design_example), &b), DW_OK);
    DW_ASSERT_STREQ(b->id, "7301234567890123456:16384:48113");
    DW_ASSERT_STREQ(b->source_system, "7301234567890123456");
    DW_ASSERT_STREQ(b->source_database, "erp");
    DW_ASSERT_STREQ(b->source_xid, "48113");
    CU_ASSERT_PTR_NULL(b->origin);
    CU_ASSERT_EQUAL(b->deadline_ms, 29850);
    CU_ASSERT_EQUAL_FATAL(b->nchanges, 3);

    c = &b->changes[0];
    DW_ASSERT_STREQ(c->table, "public.orders");
    CU_ASSERT_EQUAL(c->op, DW_CHANGE_INSERT);
    CU_ASSERT_EQUAL(c->old_row.ncols, 0);
    CU_ASSERT_EQUAL_FATAL(c->new_row.ncols, 3);
    DW_ASSERT_STREQ(c->new_row.names[2], "total");
    DW_ASSERT_STREQ(c->new_row.values[2], "12.50");

    c = &b->changes[1];
    CU_ASSERT_EQUAL(c->op, DW_CHANGE_UPDATE);
    CU_ASSERT_EQUAL(c->old_row.ncols, 3);
    DW_ASSERT_STREQ(c->old_row.values[1], "draft");
    DW_ASSERT_STREQ(c->new_row.values[1], "confirmed");

    c = &b->changes[2];
    DW_ASSERT_STREQ(c->table, "public.order_lines");
    CU_ASSERT_EQUAL(c->op, DW_CHANGE_DELETE);
    CU_ASSERT_EQUAL(c->new_row.ncols, 0);
    CU_ASSERT_EQUAL(c->old_row.ncols, 3);
    DW_ASSERT_STREQ(c->old_row.names[0], "order_id");
    CU_ASSERT(round_trip(b));
}

/* ---- round trips ---- */

static void test_round_trip_generated(void)
{
    struct rng r = {UINT64_C(0x5EED0001)};
    struct dw_arena gen;
    unsigned failures = 0;

    dw_arena_init(&gen, 0);
    for (int i = 0; i < 2000; i++) {
        struct dw_batch *b = gen_batch(&r, &gen, i % 10 == 0 ? 40 : 5, 8);

        dw_arena_reset(&arena);
        if (!round_trip(b) && failures++ > 5)
            break;
        dw_arena_reset(&gen);
    }
    CU_ASSERT_EQUAL(failures, 0);
    dw_arena_cleanup(&gen);
}

static void test_round_trip_special_values(void)
{
    char controls[40];
    const char *names[] = {"id", "caf\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x98\x80", "q\"b\\s/",
                           controls, "sp ace"};
    const char *values[] = {"", NULL, "\"\\\"", controls,
                            "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBF",
                            "\xE2\x80\xA8\xE2\x80\xA9 \x7F", "line1\nline2\r\n\ttab"};
    struct dw_row row = {7, names, values};
    struct dw_row none = {0, NULL, NULL};
    struct dw_change changes[] = {
        {"public.\xE8\xA1\xA8", DW_CHANGE_INSERT, none, row},
        {"s\"q.t\\b", DW_CHANGE_UPDATE, row, row},
        {"\xF0\x90\x80\x80.x", DW_CHANGE_DELETE, row, none},
        {"empty.images", DW_CHANGE_UPDATE, none, none},
    };
    struct dw_batch b = {"1:2:3", "1", "d\xC3\xA9", "3", "", 0, 4, changes};

    /* every control character, in a name and in a value */
    for (int c = 1; c < 32; c++)
        controls[c - 1] = (char) c;
    controls[31] = '\0';

    dw_arena_reset(&arena);
    CU_ASSERT(round_trip(&b));
    b.origin = "\xE2\x82\xAC";
    b.deadline_ms = INT64_MAX;
    CU_ASSERT(round_trip(&b));
    b.deadline_ms = -1;
    b.nchanges = 0;
    CU_ASSERT(round_trip(&b));
    b.changes = NULL;
    CU_ASSERT(round_trip(&b));
}

static void test_zero_changes_and_empty_origin(void)
{
    struct dw_batch b = {"i", "s", "d", "x", NULL, 5, 0, NULL};
    struct dw_buf out;

    dw_buf_init(&out);
    CU_ASSERT_EQUAL_FATAL(dw_wire_encode_batch(&b, &out, &err), DW_OK);
    DW_ASSERT_STREQ(out.data, "{\"id\":\"i\",\"source\":{\"system\":\"s\",\"database\":\"d\",\"xid\":\"x\"},"
                              "\"origin\":null,\"deadline_ms\":5,\"changes\":[]}");
    dw_buf_reset(&out);
    b.origin = "";
    b.deadline_ms = -7;   /* negative: no deadline, left out */
    CU_ASSERT_EQUAL_FATAL(dw_wire_encode_batch(&b, &out, &err), DW_OK);
    DW_ASSERT_STREQ(out.data, "{\"id\":\"i\",\"source\":{\"system\":\"s\",\"database\":\"d\",\"xid\":\"x\"},"
                              "\"origin\":\"\",\"changes\":[]}");
    dw_buf_cleanup(&out);
    CU_ASSERT(round_trip(&b));
}

static void test_large_batch(void)
{
    struct rng r = {UINT64_C(0x1A46E)};
    struct dw_arena gen;
    struct dw_batch *b;
    struct dw_buf out;

    dw_arena_init(&gen, 0);
    dw_buf_init(&out);
    b = gen_batch(&r, &gen, 1, 1);
    b->nchanges = 20000;
    b->changes = dw_arena_zalloc(&gen, b->nchanges * sizeof(*b->changes));
    for (size_t i = 0; i < b->nchanges; i++) {
        b->changes[i].table = "public.order_lines";
        b->changes[i].op = (dw_change_op) (i % 3);
        if (b->changes[i].op != DW_CHANGE_INSERT)
            gen_row(&r, &gen, 12, &b->changes[i].old_row);
        if (b->changes[i].op != DW_CHANGE_DELETE)
            gen_row(&r, &gen, 12, &b->changes[i].new_row);
    }
    dw_arena_reset(&arena);
    CU_ASSERT(round_trip(b));
    CU_ASSERT_EQUAL(dw_wire_encode_batch(b, &out, &err), DW_OK);
    CU_ASSERT(out.len > 1000000);
    dw_buf_cleanup(&out);
    dw_arena_cleanup(&gen);
}

/* ---- the encoder's exact output ---- */

static void test_put_string_escapes(void)
{
    static const char *const want[32] = {
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f",
        "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
        "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    };
    struct dw_buf b;

    dw_buf_init(&b);
    for (int c = 0; c < 32; c++) {
        char in = (char) c, expect[16];

        dw_buf_reset(&b);
        dw_wire_put_string(&b, &in, 1);
        snprintf(expect, sizeof(expect), "\"%s\"", want[c]);
        DW_ASSERT_STREQ(b.data, expect);
    }
    dw_buf_reset(&b);
    dw_wire_put_string(&b, "a\"b\\c/d\x7F", 8);
    DW_ASSERT_STREQ(b.data, "\"a\\\"b\\\\c/d\x7F\"");

    /* valid UTF-8 passes through unchanged, including U+2028 and U+FFFF */
    dw_buf_reset(&b);
    dw_wire_put_string(&b, "\xC3\xA9\xE2\x80\xA8\xEF\xBF\xBF\xF0\x9F\x98\x80", 12);
    DW_ASSERT_STREQ(b.data, "\"\xC3\xA9\xE2\x80\xA8\xEF\xBF\xBF\xF0\x9F\x98\x80\"");
    dw_buf_reset(&b);
    dw_wire_put_string(&b, "", 0);
    DW_ASSERT_STREQ(b.data, "\"\"");
    CU_ASSERT_FALSE(dw_buf_failed(&b));
    dw_buf_cleanup(&b);
}

static void test_put_string_invalid_utf8(void)
{
    static const char *const bad[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ab\xC3",
                                      "\x80", "\xFF"};
    struct dw_buf b;

    dw_buf_init(&b);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dw_buf_reset(&b);
        dw_wire_put_string(&b, bad[i], strlen(bad[i]));
        CU_ASSERT_TRUE(dw_buf_failed(&b));
    }
    dw_buf_cleanup(&b);
}

static void test_encode_batch_errors(void)
{
    const char *names[] = {"id", "bad\xC3"};
    const char *values[] = {"1", "x"};
    const char *bad_values[] = {"1", "\xED\xA0\x80"};
    struct dw_row row = {2, names, values};
    struct dw_change change = {"t", DW_CHANGE_INSERT, {0, NULL, NULL}, row};
    struct dw_batch b = {"i", "s", "d", "x", NULL, -1, 1, &change};
    struct dw_buf out;

    dw_buf_init(&out);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_STREQ(err.message, "cannot encode /changes/0/new/bad?: column name is not valid UTF-8 "
                                 "(truncated sequence at byte 3)");
    CU_ASSERT_EQUAL(out.len, 0);

    names[1] = "good";
    change.new_row.values = bad_values;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_STREQ(err.message, "cannot encode /changes/0/new/good: value is not valid UTF-8 "
                                 "(surrogate code point at byte 0)");

    change.new_row.values = values;
    b.source_xid = NULL;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /source/xid: string is NULL");

    b.source_xid = "x";
    change.op = (dw_change_op) 7;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_CONTAINS(err.message, "cannot encode /changes/0/op: op 7");

    change.op = DW_CHANGE_INSERT;
    names[0] = NULL;
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /changes/0/new/0: column name is NULL");
    /* what the decoder would reject is not sent */
    names[0] = "";
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /changes/0/new/: column name is empty");
    names[0] = "id";
    change.table = "";
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /changes/0/table: table name is empty");
    change.table = "t";
    CU_ASSERT_EQUAL(out.len, 0);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_batch(&b, &out, &err), DW_OK);
    CU_ASSERT_FALSE(dw_buf_failed(&out));
    dw_buf_cleanup(&out);
}

static void test_incremental_writer(void)
{
    const char *names[] = {"k"};
    const char *values[] = {NULL};
    struct dw_row row = {1, names, values};
    struct dw_buf b;

    dw_buf_init(&b);
    dw_buf_puts(&b, "stale text from the last transaction");
    dw_buf_reset(&b);
    dw_wire_batch_begin(&b, "1:2:3", "1", "erp", "3", "bridge", 100);
    dw_wire_batch_change(&b, "public.t", DW_CHANGE_INSERT, &row, &row);   /* old is ignored */
    dw_wire_batch_change(&b, "public.t", DW_CHANGE_DELETE, &row, NULL);
    dw_wire_batch_end(&b);
    CU_ASSERT_FALSE(dw_buf_failed(&b));
    DW_ASSERT_STREQ(b.data,
                    "{\"id\":\"1:2:3\",\"source\":{\"system\":\"1\",\"database\":\"erp\",\"xid\":\"3\"},"
                    "\"origin\":\"bridge\",\"deadline_ms\":100,\"changes\":["
                    "{\"table\":\"public.t\",\"op\":\"insert\",\"new\":{\"k\":null}},"
                    "{\"table\":\"public.t\",\"op\":\"delete\",\"old\":{\"k\":null}}]}");

    /* a missing image, an unknown op or a NULL name cannot be sent: the buffer says so */
    dw_buf_reset(&b);
    dw_wire_batch_begin(&b, "1", "1", "erp", "3", NULL, 0);
    dw_wire_batch_change(&b, "public.t", DW_CHANGE_UPDATE, NULL, &row);
    CU_ASSERT_TRUE(dw_buf_failed(&b));
    dw_buf_reset(&b);
    dw_wire_batch_begin(&b, "1", "1", "erp", "3", NULL, 0);
    dw_wire_batch_change(&b, "public.t", (dw_change_op) 3, &row, &row);
    CU_ASSERT_TRUE(dw_buf_failed(&b));
    dw_buf_reset(&b);
    dw_wire_batch_begin(&b, NULL, "1", "erp", "3", NULL, 0);
    CU_ASSERT_TRUE(dw_buf_failed(&b));
    dw_buf_cleanup(&b);
}

/* ---- verdicts ---- */

static void test_verdict_round_trip(void)
{
    struct rng r = {UINT64_C(0xFEED)};
    struct dw_arena gen;
    struct dw_buf out;
    unsigned bad = 0;

    dw_arena_init(&gen, 0);
    dw_buf_init(&out);
    for (int i = 0; i < 2000; i++) {
        struct dw_verdict v, *d;

        gen_verdict(&r, &gen, &v);
        dw_buf_reset(&out);
        dw_arena_reset(&arena);
        dw_error_clear(&err);
        if (dw_wire_encode_verdict(&v, &out, &err) != DW_OK || decode_verdict(out.data, &d) != DW_OK ||
            !verdicts_equal(&v, d)) {
            if (bad++ < 3)
                fprintf(stderr, "\n    verdict %d: %s\n    %s", i, err.message, out.data);
        }
        dw_arena_reset(&gen);
    }
    CU_ASSERT_EQUAL(bad, 0);
    dw_buf_cleanup(&out);
    dw_arena_cleanup(&gen);
}

static void test_verdict_encoding(void)
{
    struct dw_verdict v, *d;
    struct dw_buf out;

    dw_buf_init(&out);
    dw_verdict_init(&v, "b1", DW_VERDICT_PREPARED);
    CU_ASSERT_PTR_NULL(v.message);
    CU_ASSERT_EQUAL(v.change, -1);
    CU_ASSERT_EQUAL(v.elapsed_ms, -1);
    CU_ASSERT_EQUAL(v.retry_after_s, -1);
    CU_ASSERT_EQUAL_FATAL(dw_wire_encode_verdict(&v, &out, &err), DW_OK);
    DW_ASSERT_STREQ(out.data, "{\"id\":\"b1\",\"status\":\"prepared\"}");

    dw_buf_reset(&out);
    dw_verdict_init(&v, "b2", DW_VERDICT_REJECTED);
    v.stage = "operation";
    v.map = "orders";
    v.change = 3;
    v.message = "duplicate key value violates unique constraint \"orders_pkey\"";
    v.detail = "Key (id)=(17) already exists.";
    v.hint = "Check the map's key.";
    v.target_sqlstate = "23505";
    v.elapsed_ms = 12;
    v.retry_after_s = 0;
    CU_ASSERT_EQUAL_FATAL(dw_wire_encode_verdict(&v, &out, &err), DW_OK);
    DW_ASSERT_STREQ(out.data,
                    "{\"id\":\"b2\",\"status\":\"rejected\",\"stage\":\"operation\",\"map\":\"orders\","
                    "\"change\":3,\"message\":\"duplicate key value violates unique constraint "
                    "\\\"orders_pkey\\\"\",\"detail\":\"Key (id)=(17) already exists.\",\"hint\":"
                    "\"Check the map's key.\",\"target_sqlstate\":\"23505\",\"elapsed_ms\":12,"
                    "\"retry_after_s\":0}");
    dw_arena_reset(&arena);
    CU_ASSERT_EQUAL_FATAL(decode_verdict(out.data, &d), DW_OK);
    CU_ASSERT(verdicts_equal(&v, d));

    /* an error body without an id, as the bridge sends for undecodable batches */
    dw_buf_reset(&out);
    dw_verdict_init(&v, NULL, DW_VERDICT_THROTTLED);
    v.retry_after_s = 30;
    CU_ASSERT_EQUAL_FATAL(dw_wire_encode_verdict(&v, &out, &err), DW_OK);
    DW_ASSERT_STREQ(out.data, "{\"status\":\"throttled\",\"retry_after_s\":30}");

    /* optional fields may also be sent as null */
    CU_ASSERT_EQUAL_FATAL(decode_verdict("{\"status\":\"unavailable\",\"id\":null,\"message\":null,"
                                         "\"change\":null,\"elapsed_ms\":null,\"target_sqlstate\":null}",
                                         &d), DW_OK);
    CU_ASSERT_EQUAL(d->status, DW_VERDICT_UNAVAILABLE);
    CU_ASSERT_PTR_NULL(d->id);
    CU_ASSERT_EQUAL(d->change, -1);

    /* a SQLSTATE the decoder would refuse is not sent either */
    dw_buf_reset(&out);
    dw_error_clear(&err);
    v.target_sqlstate = "2350";
    CU_ASSERT_EQUAL(dw_wire_encode_verdict(&v, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /target_sqlstate: \"2350\" is not five digits or "
                                 "uppercase letters");
    CU_ASSERT_EQUAL(out.len, 0);
    v.target_sqlstate = "42P01";
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_encode_verdict(&v, &out, &err), DW_OK);

    dw_error_clear(&err);
    v.status = (dw_verdict_status) 9;
    CU_ASSERT_EQUAL(dw_wire_encode_verdict(&v, &out, &err), DW_ERR_INTERNAL);
    DW_ASSERT_STREQ(err.message, "cannot encode /status: status 9 is not a dw_verdict_status");
    dw_buf_cleanup(&out);
}

static void test_names(void)
{
    DW_ASSERT_STREQ(dw_change_op_name(DW_CHANGE_INSERT), "insert");
    DW_ASSERT_STREQ(dw_change_op_name(DW_CHANGE_UPDATE), "update");
    DW_ASSERT_STREQ(dw_change_op_name(DW_CHANGE_DELETE), "delete");
    DW_ASSERT_STREQ(dw_change_op_name((dw_change_op) 3), "unknown");
    DW_ASSERT_STREQ(dw_verdict_status_name(DW_VERDICT_PREPARED), "prepared");
    DW_ASSERT_STREQ(dw_verdict_status_name(DW_VERDICT_COMMITTED), "committed");
    DW_ASSERT_STREQ(dw_verdict_status_name(DW_VERDICT_REJECTED), "rejected");
    DW_ASSERT_STREQ(dw_verdict_status_name(DW_VERDICT_THROTTLED), "throttled");
    DW_ASSERT_STREQ(dw_verdict_status_name(DW_VERDICT_UNAVAILABLE), "unavailable");
    DW_ASSERT_STREQ(dw_verdict_status_name((dw_verdict_status) -1), "unknown");
}

/* ---- malformed batches: one case per class, with the path the user sees ---- */

#define SRC "\"source\":{\"system\":\"1\",\"database\":\"erp\",\"xid\":\"7\"}"
#define HEAD "{\"id\":\"b\"," SRC ","
#define ONE(change) HEAD "\"changes\":[" change "]}"
#define INS(row) ONE("{\"table\":\"t\",\"op\":\"insert\",\"new\":" row "}")

struct bad_case {
    const char *name;
    const char *input;
    dw_errcode code;
    const char *message;   /* the whole message, or a fragment when partial */
    bool partial;
};

static const struct bad_case bad_batches[] = {
    {"not JSON", "{\"id\":", DW_ERR_PROTOCOL, "/id: unexpected end of input, expected a value at byte 6"},
    {"not an object", "[]", DW_ERR_PROTOCOL, "expected a batch object, found an array"},
    {"trailing garbage", HEAD "\"changes\":[]}}", DW_ERR_PROTOCOL,
     "unexpected '}' after the end of the JSON value at byte 74"},
    {"missing id", "{" SRC ",\"changes\":[]}", DW_ERR_PROTOCOL, "missing required key \"id\""},
    {"missing source", "{\"id\":\"b\",\"changes\":[]}", DW_ERR_PROTOCOL,
     "missing required key \"source\""},
    {"missing changes", HEAD "\"origin\":null}", DW_ERR_PROTOCOL, "missing required key \"changes\""},
    {"missing xid", "{\"id\":\"b\",\"source\":{\"system\":\"1\",\"database\":\"erp\"},\"changes\":[]}",
     DW_ERR_PROTOCOL, "/source: missing required key \"xid\""},
    {"id not a string", "{\"id\":7," SRC ",\"changes\":[]}", DW_ERR_PROTOCOL,
     "/id: expected a string, found a number"},
    {"empty id", "{\"id\":\"\"," SRC ",\"changes\":[]}", DW_ERR_PROTOCOL, "/id: must not be empty"},
    {"source not an object", "{\"id\":\"b\",\"source\":\"erp\",\"changes\":[]}", DW_ERR_PROTOCOL,
     "/source: expected an object, found a string"},
    {"system null", "{\"id\":\"b\",\"source\":{\"system\":null},\"changes\":[]}", DW_ERR_PROTOCOL,
     "/source/system: expected a string, found null"},
    {"unknown top-level key", HEAD "\"changes\":[],\"priority\":1}", DW_ERR_PROTOCOL,
     "/priority: unknown key (valid: id, source, origin, deadline_ms, changes)"},
    {"unknown source key", "{\"id\":\"b\",\"source\":{\"host\":\"x\"},\"changes\":[]}",
     DW_ERR_PROTOCOL, "/source/host: unknown key (valid: system, database, xid)"},
    {"origin not a string", HEAD "\"origin\":1,\"changes\":[]}", DW_ERR_PROTOCOL,
     "/origin: expected a string or null, found a number"},
    {"deadline a string", HEAD "\"deadline_ms\":\"100\",\"changes\":[]}", DW_ERR_PROTOCOL,
     "/deadline_ms: expected an integer, found a string"},
    {"deadline a fraction", HEAD "\"deadline_ms\":1.5,\"changes\":[]}", DW_ERR_PROTOCOL,
     "/deadline_ms: expected an integer, found 1.5"},
    {"deadline with exponent", HEAD "\"deadline_ms\":1e3,\"changes\":[]}", DW_ERR_PROTOCOL,
     "/deadline_ms: expected an integer, found 1e3"},
    {"deadline negative", HEAD "\"deadline_ms\":-5,\"changes\":[]}", DW_ERR_PROTOCOL,
     "/deadline_ms: must not be negative, found -5"},
    {"deadline out of range", HEAD "\"deadline_ms\":9223372036854775808,\"changes\":[]}",
     DW_ERR_PROTOCOL, "/deadline_ms: integer 9223372036854775808 is out of range"},
    {"deadline leading zero", HEAD "\"deadline_ms\":0100,\"changes\":[]}", DW_ERR_PROTOCOL,
     "/deadline_ms: invalid number: leading zeros are not allowed at byte 75"},
    {"changes not an array", HEAD "\"changes\":{}}", DW_ERR_PROTOCOL,
     "/changes: expected an array, found an object"},
    {"change not an object", ONE("{\"table\":\"t\",\"op\":\"delete\",\"old\":{}},\"x\""),
     DW_ERR_PROTOCOL, "/changes/1: expected an object, found a string"},
    {"unknown op", ONE("{\"table\":\"t\",\"op\":\"upsert\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0/op: unknown op \"upsert\" (valid: insert, update, delete)"},
    {"unknown op at 3", ONE("{\"table\":\"t\",\"op\":\"insert\",\"new\":{}},"
                            "{\"table\":\"t\",\"op\":\"insert\",\"new\":{}},"
                            "{\"table\":\"t\",\"op\":\"insert\",\"new\":{}},"
                            "{\"table\":\"t\",\"op\":\"upsert\",\"new\":{}}"),
     DW_ERR_PROTOCOL, "/changes/3/op: unknown op \"upsert\" (valid: insert, update, delete)"},
    {"op not a string", ONE("{\"table\":\"t\",\"op\":1,\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0/op: expected a string, found a number"},
    {"op in capitals", ONE("{\"table\":\"t\",\"op\":\"INSERT\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0/op: unknown op \"INSERT\" (valid: insert, update, delete)"},
    {"missing op", ONE("{\"table\":\"t\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"op\""},
    {"missing table", ONE("{\"op\":\"insert\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"table\""},
    {"empty table", ONE("{\"table\":\"\",\"op\":\"insert\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0/table: must not be empty"},
    {"unknown change key", ONE("{\"table\":\"t\",\"op\":\"insert\",\"new\":{},\"xmin\":\"1\"}"),
     DW_ERR_PROTOCOL, "/changes/0/xmin: unknown key (valid: table, op, old, new)"},
    {"insert with old", ONE("{\"table\":\"t\",\"op\":\"insert\",\"old\":{},\"new\":{}}"),
     DW_ERR_PROTOCOL, "/changes/0/old: not allowed for op \"insert\""},
    {"insert without new", ONE("{\"table\":\"t\",\"op\":\"insert\"}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"new\" for op \"insert\""},
    {"update without old", ONE("{\"table\":\"t\",\"op\":\"update\",\"new\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"old\" for op \"update\""},
    {"update without new", ONE("{\"table\":\"t\",\"op\":\"update\",\"old\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"new\" for op \"update\""},
    {"delete with new", ONE("{\"table\":\"t\",\"new\":{},\"op\":\"delete\",\"old\":{}}"),
     DW_ERR_PROTOCOL, "/changes/0/new: not allowed for op \"delete\""},
    {"delete without old", ONE("{\"table\":\"t\",\"op\":\"delete\"}"), DW_ERR_PROTOCOL,
     "/changes/0: missing required key \"old\" for op \"delete\""},
    {"image null", ONE("{\"table\":\"t\",\"op\":\"delete\",\"old\":null}"), DW_ERR_PROTOCOL,
     "/changes/0/old: expected an object, found null"},
    {"image an array", INS("[\"a\"]"), DW_ERR_PROTOCOL,
     "/changes/0/new: expected an object, found an array"},
    {"value a number", INS("{\"id\":\"17\",\"total\":12.5}"), DW_ERR_PROTOCOL,
     "/changes/0/new/total: expected a string or null, found a number"},
    {"value a boolean", INS("{\"ok\":true}"), DW_ERR_PROTOCOL,
     "/changes/0/new/ok: expected a string or null, found a boolean"},
    {"value an object", INS("{\"o\":{}}"), DW_ERR_PROTOCOL,
     "/changes/0/new/o: expected a string or null, found an object"},
    {"empty column name", INS("{\"\":\"x\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/: column name must not be empty"},
    {"column name with slash", INS("{\"a/b\":1}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a~1b: expected a string or null, found a number"},
    {"duplicate column", INS("{\"id\":\"1\",\"id\":\"2\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new: duplicate key \"id\" at byte 115"},
    {"duplicate top-level key", HEAD "\"changes\":[],\"id\":\"c\"}", DW_ERR_PROTOCOL,
     "duplicate key \"id\" at byte 74"},
    {"NUL in value", INS("{\"a\":\"x\\u0000y\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a: string contains \\u0000, which is not supported (values are C strings) at "
     "byte 112"},
    {"NUL in column name", INS("{\"a\\u0000\":\"x\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new: string contains \\u0000", true},
    {"overlong UTF-8", INS("{\"a\":\"\xC0\xAF\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a: invalid UTF-8 in string (overlong encoding) at byte 111"},
    {"UTF-8 surrogate", INS("{\"a\":\"\xED\xB2\x80\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a: invalid UTF-8 in string (surrogate code point)", true},
    {"UTF-8 above U+10FFFF", INS("{\"a\":\"\xF4\x90\x80\x80\"}"), DW_ERR_PROTOCOL,
     "(code point above U+10FFFF)", true},
    {"truncated UTF-8", INS("{\"a\":\"\xE2\x82\"}"), DW_ERR_PROTOCOL, "(truncated sequence)", true},
    {"invalid UTF-8 in table", ONE("{\"table\":\"t\xFF\",\"op\":\"insert\",\"new\":{}}"),
     DW_ERR_PROTOCOL, "/changes/0/table: invalid UTF-8 in string (invalid byte)", true},
    {"lone surrogate escape", INS("{\"a\":\"\\uDE00\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a: lone surrogate \\uDE00", true},
    {"control character", INS("{\"a\":\"x\ny\"}"), DW_ERR_PROTOCOL,
     "/changes/0/new/a: unescaped control character 0x0A in string at byte 112"},
    {"too deep", "{\"id\":[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]}", DW_ERR_LIMIT,
     "nesting depth exceeds the limit of 16 at byte 21", true},
};

static void check_bad(const struct bad_case *c, bool verdict)
{
    dw_errcode rc;

    dw_arena_reset(&arena);
    if (verdict) {
        struct dw_verdict *v = (struct dw_verdict *) 1;

        rc = decode_verdict(c->input, &v);
        CU_ASSERT_PTR_NULL(v);
    } else {
        struct dw_batch *b = (struct dw_batch *) 1;

        rc = decode_batch(c->input, strlen(c->input), &b);
        CU_ASSERT_PTR_NULL(b);
    }
    if (rc != c->code)
        fprintf(stderr, "\n    code %d: %s", (int) rc, err.message);
    CU_ASSERT_EQUAL(rc, c->code);
    CU_ASSERT_EQUAL(err.code, c->code);
    if (c->partial)
        DW_ASSERT_CONTAINS(err.message, c->message);
    else
        DW_ASSERT_STREQ(err.message, c->message);
}

/*
 * Each malformed-input class is its own CUnit test, so a failure names the
 * class.  CUnit runs tests in registration order, so one function can walk
 * the table with a counter.
 */
static size_t next_bad_batch, next_bad_verdict;

static void test_bad_batch(void)
{
    check_bad(&bad_batches[next_bad_batch++], false);
}

static const struct bad_case bad_verdicts[] = {
    {"not an object", "\"prepared\"", DW_ERR_PROTOCOL, "expected a verdict object, found a string"},
    {"missing status", "{\"id\":\"b\"}", DW_ERR_PROTOCOL, "missing required key \"status\""},
    {"unknown status", "{\"status\":\"ok\"}", DW_ERR_PROTOCOL,
     "/status: unknown status \"ok\" (valid: prepared, committed, rejected, throttled, unavailable)"},
    {"status null", "{\"status\":null}", DW_ERR_PROTOCOL, "/status: expected a string, found null"},
    {"change a string", "{\"status\":\"rejected\",\"change\":\"3\"}", DW_ERR_PROTOCOL,
     "/change: expected an integer, found a string"},
    {"change negative", "{\"status\":\"rejected\",\"change\":-1}", DW_ERR_PROTOCOL,
     "/change: must not be negative, found -1"},
    {"retry fraction", "{\"status\":\"throttled\",\"retry_after_s\":2.5}", DW_ERR_PROTOCOL,
     "/retry_after_s: expected an integer, found 2.5"},
    {"elapsed a boolean", "{\"status\":\"committed\",\"elapsed_ms\":true}", DW_ERR_PROTOCOL,
     "/elapsed_ms: expected an integer, found a boolean"},
    {"detail a number", "{\"status\":\"rejected\",\"detail\":1}", DW_ERR_PROTOCOL,
     "/detail: expected a string or null, found a number"},
    {"hint an array", "{\"status\":\"rejected\",\"hint\":[]}", DW_ERR_PROTOCOL,
     "/hint: expected a string or null, found an array"},
    {"bad sqlstate", "{\"status\":\"rejected\",\"target_sqlstate\":\"2350\"}", DW_ERR_PROTOCOL,
     "/target_sqlstate: expected five digits or uppercase letters, found \"2350\""},
    {"lowercase sqlstate", "{\"status\":\"rejected\",\"target_sqlstate\":\"hy000\"}", DW_ERR_PROTOCOL,
     "/target_sqlstate: expected five digits or uppercase letters, found \"hy000\""},
    {"unknown key", "{\"status\":\"rejected\",\"reason\":\"x\"}", DW_ERR_PROTOCOL,
     "/reason: unknown key (valid: id, status, stage, map, change, message, detail, hint, "
     "target_sqlstate, elapsed_ms, retry_after_s)"},
    {"duplicate status", "{\"status\":\"rejected\",\"status\":\"committed\"}", DW_ERR_PROTOCOL,
     "duplicate key \"status\" at byte 21"},
    {"invalid UTF-8 message", "{\"status\":\"rejected\",\"message\":\"\xC3(\"}", DW_ERR_PROTOCOL,
     "/message: invalid UTF-8 in string (truncated sequence) at byte 32"},
    {"too deep", "{\"id\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}", DW_ERR_LIMIT,
     "nesting depth exceeds the limit of 16", true},
};

static void test_bad_verdict(void)
{
    check_bad(&bad_verdicts[next_bad_verdict++], true);
}

static void test_size_limits(void)
{
    size_t big = DW_WIRE_MAX_BATCH_BYTES + 1;
    char *data = calloc(1, big);   /* zero pages: cheap, and never read */
    struct dw_batch *b;
    struct dw_verdict *v;
    char msg[128];

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_decode_batch(data, big, &arena, &b, &err), DW_ERR_LIMIT);
    snprintf(msg, sizeof(msg), "batch of %zu bytes exceeds the limit of %zu bytes", big,
             (size_t) DW_WIRE_MAX_BATCH_BYTES);
    DW_ASSERT_STREQ(err.message, msg);

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_decode_verdict(data, DW_WIRE_MAX_VERDICT_BYTES + 1, &arena, &v, &err),
                    DW_ERR_LIMIT);
    DW_ASSERT_STREQ(err.message, "verdict of 65537 bytes exceeds the limit of 65536 bytes");

    /* a verdict of exactly the limit is accepted */
    memset(data, ' ', DW_WIRE_MAX_VERDICT_BYTES);
    memcpy(data, "{\"status\":\"committed\"}", 22);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_decode_verdict(data, DW_WIRE_MAX_VERDICT_BYTES, &arena, &v, &err), DW_OK);
    free(data);

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_decode_batch("", 0, &arena, &b, &err), DW_ERR_PROTOCOL);
    DW_ASSERT_STREQ(err.message, "unexpected end of input, expected a value at byte 0");
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_wire_decode_batch(NULL, 0, &arena, &b, &err), DW_ERR_PROTOCOL);
}

static void test_error_messages_are_clean(void)
{
    /* user data in a path is shortened and kept one line of valid UTF-8 */
    const char *doc = INS("{\"line\\none\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                          "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                          "\\u00e9\\u00e9\\u00e9\":0}");
    struct dw_batch *b;

    dw_arena_reset(&arena);
    CU_ASSERT_EQUAL(decode_batch(doc, strlen(doc), &b), DW_ERR_PROTOCOL);
    CU_ASSERT_PTR_NULL(strchr(err.message, '\n'));
    CU_ASSERT_EQUAL(dw_utf8_validate(err.message, strlen(err.message), NULL), DW_UTF8_OK);
    DW_ASSERT_CONTAINS(err.message, "/changes/0/new/line?one\xC3\xA9");
    DW_ASSERT_CONTAINS(err.message, "...: expected a string or null, found a number");
}

static const struct dw_cunit_test tests[] = {
    {"decodes the DESIGN.md example", test_design_example},
    {"round trip: generated batches", test_round_trip_generated},
    {"round trip: special values", test_round_trip_special_values},
    {"round trip: zero changes, origin", test_zero_changes_and_empty_origin},
    {"round trip: large batch", test_large_batch},
    {"encode: escapes", test_put_string_escapes},
    {"encode: invalid UTF-8", test_put_string_invalid_utf8},
    {"encode: batch errors name the field", test_encode_batch_errors},
    {"encode: incremental writer", test_incremental_writer},
    {"verdict: round trip", test_verdict_round_trip},
    {"verdict: encoding", test_verdict_encoding},
    {"op and status names", test_names},
    {"size limits", test_size_limits},
    {"messages stay clean", test_error_messages_are_clean},
};

#define NBAD_BATCHES (sizeof(bad_batches) / sizeof(bad_batches[0]))
#define NBAD_VERDICTS (sizeof(bad_verdicts) / sizeof(bad_verdicts[0]))
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

int main(void)
{
    static struct dw_cunit_test all[NTESTS + NBAD_BATCHES + NBAD_VERDICTS];
    static char names[NBAD_BATCHES + NBAD_VERDICTS][96];
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < NTESTS; i++)
        all[n++] = tests[i];
    for (size_t i = 0; i < NBAD_BATCHES; i++) {
        snprintf(names[i], sizeof(names[i]), "malformed batch: %s", bad_batches[i].name);
        all[n].name = names[i];
        all[n++].fn = test_bad_batch;
    }
    for (size_t i = 0; i < NBAD_VERDICTS; i++) {
        char *name = names[NBAD_BATCHES + i];

        snprintf(name, sizeof(names[0]), "malformed verdict: %s", bad_verdicts[i].name);
        all[n].name = name;
        all[n++].fn = test_bad_verdict;
    }
    dw_arena_init(&arena, 0);
    rc = dw_cunit_run("wire", all, n);
    dw_arena_cleanup(&arena);
    return rc;
}
