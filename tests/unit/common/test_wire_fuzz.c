/*
 * Randomized robustness tests of the batch and verdict decoders.
 *
 * Valid encodings of generated batches and verdicts are mutated (bit flips,
 * truncations, insertions of bytes and JSON tokens, deletions, duplicated
 * ranges that make duplicate keys, splices of two documents), and random byte
 * strings and deeply nested documents are added.  Every input is copied to a
 * heap block of exactly its size, so sanitizers and valgrind catch any read
 * past the end.  The seed is fixed: a failure repeats on every run.
 *
 * Properties checked for each input:
 *   - decoding returns (no crash, no hang, no leak under valgrind);
 *   - a rejection has a protocol or limit code and a one-line, valid UTF-8
 *     message, and leaves *out NULL;
 *   - an accepted input re-encodes, decodes again to an equal batch, and the
 *     second encoding is byte-identical to the first (canonical form);
 *   - the generic parser agrees: the decoder never accepts what it rejects.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge/common/dw_json.h"
#include "bridge/common/dw_utf8.h"
#include "bridge/common/dw_wire.h"
#include "tests/unit/common/dw_cunit.h"
#include "tests/unit/common/wire_gen.h"

#define SEED UINT64_C(0xD0A1C0DE2024)

static struct dw_arena arena;
static struct dw_arena arena2;
static struct dw_arena gen_arena;

struct stats {
    unsigned inputs;
    unsigned accepted;
    unsigned failures;
};

/* Complain about at most a few failures; the count tells the rest. */
static void failure(struct stats *st, const char *what, const char *data, size_t len,
                    const char *message)
{
    if (st->failures++ < 5)
        fprintf(stderr, "\n    %s: %s\n    input (%zu bytes): %.*s", what, message ? message : "",
                len, (int) (len > 300 ? 300 : len), data);
}

static bool message_ok(const struct dw_error *e)
{
    size_t n = strlen(e->message);

    return n > 0 && !strchr(e->message, '\n') &&
           dw_utf8_validate(e->message, n, NULL) == DW_UTF8_OK;
}

static void check_batch_input(const char *input, size_t len, struct stats *st)
{
    char *data = malloc(len ? len : 1);
    struct dw_error err, jerr;
    struct dw_batch *b = NULL, *b2 = NULL;
    struct dw_json *tree;
    dw_errcode rc, jrc;

    memcpy(data, input, len);
    st->inputs++;
    dw_arena_reset(&arena);
    dw_error_clear(&err);
    dw_error_clear(&jerr);
    rc = dw_wire_decode_batch(data, len, &arena, &b, &err);
    jrc = dw_json_parse(data, len, NULL, &arena, &tree, &jerr);
    if (rc == DW_OK && jrc != DW_OK)
        failure(st, "decoder accepted what the parser rejects", data, len, jerr.message);
    if (rc != DW_OK) {
        if ((rc != DW_ERR_PROTOCOL && rc != DW_ERR_LIMIT) || err.code != rc || b != NULL ||
            !message_ok(&err))
            failure(st, "bad rejection", data, len, err.message);
    } else {
        struct dw_buf e1, e2;
        char why[200];

        st->accepted++;
        dw_buf_init(&e1);
        dw_buf_init(&e2);
        dw_arena_reset(&arena2);
        if (dw_wire_encode_batch(b, &e1, &err) != DW_OK)
            failure(st, "accepted batch does not encode", data, len, err.message);
        else if (dw_wire_decode_batch(e1.data, e1.len, &arena2, &b2, &err) != DW_OK)
            failure(st, "re-encoded batch does not decode", e1.data, e1.len, err.message);
        else if (!batches_equal(b, b2, why, sizeof(why)))
            failure(st, "round trip differs", data, len, why);
        else if (dw_wire_encode_batch(b2, &e2, &err) != DW_OK || e1.len != e2.len ||
                 memcmp(e1.data, e2.data, e1.len) != 0)
            failure(st, "encoding is not canonical", e1.data, e1.len, NULL);
        dw_buf_cleanup(&e1);
        dw_buf_cleanup(&e2);
    }
    free(data);
}

static void check_verdict_input(const char *input, size_t len, struct stats *st)
{
    char *data = malloc(len ? len : 1);
    struct dw_error err;
    struct dw_verdict *v = NULL, *v2 = NULL;
    dw_errcode rc;

    memcpy(data, input, len);
    st->inputs++;
    dw_arena_reset(&arena);
    dw_error_clear(&err);
    rc = dw_wire_decode_verdict(data, len, &arena, &v, &err);
    if (rc != DW_OK) {
        if ((rc != DW_ERR_PROTOCOL && rc != DW_ERR_LIMIT) || v != NULL || !message_ok(&err))
            failure(st, "bad verdict rejection", data, len, err.message);
    } else {
        struct dw_buf e1, e2;

        st->accepted++;
        dw_buf_init(&e1);
        dw_buf_init(&e2);
        dw_arena_reset(&arena2);
        if (dw_wire_encode_verdict(v, &e1, &err) != DW_OK)
            failure(st, "accepted verdict does not encode", data, len, err.message);
        else if (dw_wire_decode_verdict(e1.data, e1.len, &arena2, &v2, &err) != DW_OK)
            failure(st, "re-encoded verdict does not decode", e1.data, e1.len, err.message);
        else if (!verdicts_equal(v, v2))
            failure(st, "verdict round trip differs", data, len, NULL);
        else if (dw_wire_encode_verdict(v2, &e2, &err) != DW_OK || e1.len != e2.len ||
                 memcmp(e1.data, e2.data, e1.len) != 0)
            failure(st, "verdict encoding is not canonical", e1.data, e1.len, NULL);
        dw_buf_cleanup(&e1);
        dw_buf_cleanup(&e2);
    }
    free(data);
}

/* ---- mutations ---- */

/* Fragments that steer mutations toward interesting parser states. */
static const char *const tokens[] = {
    "\"", "\\", "{", "}", "[", "]", ",", ":", "null", "true", "0", "-", "1e9", "01", "1.5",
    "\\u0000", "\\uD800", "\\uDC00", "\\uD83D\\uDE00", "\\n", "\\x", "\xC0\xAF", "\xED\xA0\x80",
    "\xF4\x90\x80\x80", "\xE2\x82", "\xC3\xA9", "\xF0\x9F\x98\x80", "\x01", "\x7F", "\xFF",
    "\"op\":\"upsert\"", "\"op\":\"delete\"", "\"new\":{}", "\"old\":{}", "\"new\":null",
    "\"id\":\"x\"", "\"deadline_ms\":-1", "\"status\":\"ok\"", "\"change\":3", "{\"a\":1}",
    "[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]", " ", "\t", "\r\n",
};
#define NTOKENS (sizeof(tokens) / sizeof(tokens[0]))

/* Write in, changed by one random mutation, to out. */
static void mutate(struct rng *r, const struct dw_buf *in, struct dw_buf *out)
{
    size_t len = in->len, at = len ? rng_below(r, len + 1) : 0;

    dw_buf_reset(out);
    switch (rng_below(r, 8)) {
    case 0: {   /* flip one to four bits */
        unsigned flips = 1 + (unsigned) rng_below(r, 4);

        dw_buf_append(out, in->data, len);
        for (unsigned i = 0; i < flips && len; i++)
            out->data[rng_below(r, len)] ^= (char) (1u << rng_below(r, 8));
        break;
    }
    case 1:     /* truncate */
        dw_buf_append(out, in->data, at);
        break;
    case 2: {   /* insert random bytes */
        size_t n = 1 + rng_below(r, 4);

        dw_buf_append(out, in->data, at);
        for (size_t i = 0; i < n; i++)
            dw_buf_putc(out, (char) rng_below(r, 256));
        dw_buf_append(out, in->data + at, len - at);
        break;
    }
    case 3:     /* insert a token */
        dw_buf_append(out, in->data, at);
        dw_buf_puts(out, tokens[rng_below(r, NTOKENS)]);
        dw_buf_append(out, in->data + at, len - at);
        break;
    case 4: {   /* delete a range */
        size_t n = rng_below(r, 16) + 1;

        if (n > len - at)
            n = len - at;
        dw_buf_append(out, in->data, at);
        dw_buf_append(out, in->data + at + n, len - at - n);
        break;
    }
    case 5: {   /* duplicate a range elsewhere: repeated members, repeated changes */
        size_t from = len ? rng_below(r, len) : 0, n = rng_below(r, 64) + 1;

        if (n > len - from)
            n = len - from;
        dw_buf_append(out, in->data, at);
        dw_buf_append(out, in->data + from, n);
        dw_buf_append(out, in->data + at, len - at);
        break;
    }
    case 6:     /* replace one byte */
        dw_buf_append(out, in->data, len);
        if (len)
            out->data[rng_below(r, len)] = (char) rng_below(r, 256);
        break;
    default: {  /* replace a byte with a structural character */
        static const char structural[] = "{}[]\",:0-.eE\\ tfn";

        dw_buf_append(out, in->data, len);
        if (len)
            out->data[rng_below(r, len)] = structural[rng_below(r, sizeof(structural) - 1)];
        break;
    }
    }
}

/* ---- the tests ---- */

static void report(const char *what, const struct stats *st)
{
    fprintf(stderr, "\n    %s: %u inputs, %u accepted ", what, st->inputs, st->accepted);
}

static void test_mutated_batches(void)
{
    struct rng r = {SEED};
    struct stats st = {0};
    struct dw_buf base, mutated, again;

    dw_buf_init(&base);
    dw_buf_init(&mutated);
    dw_buf_init(&again);
    for (int i = 0; i < 1000; i++) {
        struct dw_batch *b;
        struct dw_error err;

        dw_arena_reset(&gen_arena);
        /* every tenth batch has wide rows: duplicate detection by sorting */
        b = gen_batch(&r, &gen_arena, 4, i % 10 == 0 ? 40 : 4);
        dw_buf_reset(&base);
        dw_error_clear(&err);
        CU_ASSERT_EQUAL_FATAL(dw_wire_encode_batch(b, &base, &err), DW_OK);
        check_batch_input(base.data, base.len, &st);
        for (int m = 0; m < 40; m++) {
            mutate(&r, &base, &mutated);
            check_batch_input(mutated.data, mutated.len, &st);
            /* a second mutation on top reaches states one mutation cannot */
            if (m % 4 == 0) {
                mutate(&r, &mutated, &again);
                check_batch_input(again.data, again.len, &st);
            }
        }
    }
    report("mutated batches", &st);
    CU_ASSERT_EQUAL(st.failures, 0);
    /* the mutations must not all be trivially fatal: many keep the input valid */
    CU_ASSERT(st.accepted > st.inputs / 20);
    dw_buf_cleanup(&base);
    dw_buf_cleanup(&mutated);
    dw_buf_cleanup(&again);
}

static void test_mutated_verdicts(void)
{
    struct rng r = {SEED ^ 0x5A5A};
    struct stats st = {0};
    struct dw_buf base, mutated;

    dw_buf_init(&base);
    dw_buf_init(&mutated);
    for (int i = 0; i < 1000; i++) {
        struct dw_verdict v;
        struct dw_error err;

        dw_arena_reset(&gen_arena);
        gen_verdict(&r, &gen_arena, &v);
        dw_buf_reset(&base);
        dw_error_clear(&err);
        CU_ASSERT_EQUAL_FATAL(dw_wire_encode_verdict(&v, &base, &err), DW_OK);
        check_verdict_input(base.data, base.len, &st);
        for (int m = 0; m < 25; m++) {
            mutate(&r, &base, &mutated);
            check_verdict_input(mutated.data, mutated.len, &st);
        }
    }
    report("mutated verdicts", &st);
    CU_ASSERT_EQUAL(st.failures, 0);
    CU_ASSERT(st.accepted > st.inputs / 20);
    dw_buf_cleanup(&base);
    dw_buf_cleanup(&mutated);
}

static void test_spliced_batches(void)
{
    struct rng r = {SEED ^ 0x51CE};
    struct stats st = {0};
    struct dw_buf a, b, out;

    dw_buf_init(&a);
    dw_buf_init(&b);
    dw_buf_init(&out);
    for (int i = 0; i < 3000; i++) {
        struct dw_error err;

        dw_arena_reset(&gen_arena);
        dw_buf_reset(&a);
        dw_buf_reset(&b);
        dw_buf_reset(&out);
        dw_error_clear(&err);
        CU_ASSERT_EQUAL_FATAL(dw_wire_encode_batch(gen_batch(&r, &gen_arena, 3, 3), &a, &err), DW_OK);
        CU_ASSERT_EQUAL_FATAL(dw_wire_encode_batch(gen_batch(&r, &gen_arena, 3, 3), &b, &err), DW_OK);
        dw_buf_append(&out, a.data, rng_below(&r, a.len + 1));
        {
            size_t from = rng_below(&r, b.len + 1);

            dw_buf_append(&out, b.data + from, b.len - from);
        }
        check_batch_input(out.data, out.len, &st);
    }
    report("spliced batches", &st);
    CU_ASSERT_EQUAL(st.failures, 0);
    dw_buf_cleanup(&a);
    dw_buf_cleanup(&b);
    dw_buf_cleanup(&out);
}

static void test_random_bytes(void)
{
    /* mostly JSON's alphabet, so that some inputs get past the first byte */
    static const char alphabet[] = "{}[]\",:0123456789-+.eE \t\n\\/ubfnrtaxyz\"\"";
    struct rng r = {SEED ^ 0xB17E5};
    struct stats st = {0}, sv = {0};
    char buf[256];

    for (int i = 0; i < 5000; i++) {
        size_t n = rng_below(&r, sizeof(buf));
        bool raw = rng_chance(&r, 30);

        for (size_t k = 0; k < n; k++)
            buf[k] = raw ? (char) rng_below(&r, 256) : alphabet[rng_below(&r, sizeof(alphabet) - 1)];
        check_batch_input(buf, n, &st);
        check_verdict_input(buf, n, &sv);
    }
    report("random bytes", &st);
    CU_ASSERT_EQUAL(st.failures + sv.failures, 0);
}

static void test_deep_nesting(void)
{
    struct rng r = {SEED ^ 0xDEE9};
    struct stats st = {0}, sv = {0};
    unsigned deep_accepted = 0;
    struct dw_buf doc;

    dw_buf_init(&doc);
    for (int i = 0; i < 1000; i++) {
        size_t depth = 1 + rng_below(&r, 40);
        char closers[64];

        /* nested containers in a place the batch allows any value to be checked */
        dw_buf_reset(&doc);
        dw_buf_puts(&doc, "{\"id\":\"b\",\"source\":{\"system\":\"1\",\"database\":\"d\",\"xid\":\"2\"},"
                          "\"changes\":[{\"table\":\"t\",\"op\":\"insert\",\"new\":");
        for (size_t d = 0; d < depth; d++) {
            if (rng_chance(&r, 50)) {
                dw_buf_puts(&doc, "{\"k\":");
                closers[d] = '}';
            } else {
                dw_buf_putc(&doc, '[');
                closers[d] = ']';
            }
        }
        dw_buf_puts(&doc, rng_chance(&r, 50) ? "\"v\"" : "null");
        for (size_t d = depth; d-- > 0;)
            dw_buf_putc(&doc, closers[d]);
        dw_buf_puts(&doc, "}]}");
        /* sometimes leave the nesting unclosed */
        if (rng_chance(&r, 20))
            doc.len = rng_below(&r, doc.len);
        {
            unsigned before = st.accepted;

            check_batch_input(doc.data, doc.len, &st);
            /* one object level is a row; anything deeper can never be */
            if (depth > 1)
                deep_accepted += st.accepted - before;
        }
        check_verdict_input(doc.data, doc.len, &sv);
    }
    /* a megabyte of brackets must not recurse or allocate per level */
    dw_buf_reset(&doc);
    for (int i = 0; i < 1 << 20; i++)
        dw_buf_putc(&doc, i % 2 ? '[' : '{');
    check_batch_input(doc.data, doc.len, &st);
    check_verdict_input(doc.data, doc.len < DW_WIRE_MAX_VERDICT_BYTES ? doc.len : 1000, &sv);
    report("deep nesting", &st);
    CU_ASSERT_EQUAL(st.failures + sv.failures, 0);
    CU_ASSERT_EQUAL(deep_accepted, 0);
    dw_buf_cleanup(&doc);
}

static const struct dw_cunit_test tests[] = {
    {"mutated batches", test_mutated_batches},
    {"mutated verdicts", test_mutated_verdicts},
    {"spliced batches", test_spliced_batches},
    {"random bytes", test_random_bytes},
    {"deep nesting", test_deep_nesting},
};

int main(void)
{
    int rc;

    dw_arena_init(&arena, 0);
    dw_arena_init(&arena2, 0);
    dw_arena_init(&gen_arena, 0);
    rc = dw_cunit_run("wire fuzz", tests, sizeof(tests) / sizeof(tests[0]));
    dw_arena_cleanup(&arena);
    dw_arena_cleanup(&arena2);
    dw_arena_cleanup(&gen_arena);
    return rc;
}
