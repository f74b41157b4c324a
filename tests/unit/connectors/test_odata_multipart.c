/*
 * The odata connector's $batch response parser (connectors/odata/
 * dw_odata_multipart.c) on crafted inputs: the answers SAP CAP and Dataverse
 * give (changeset of 204s, a single failed response, quoted boundaries,
 * preamble and epilogue), and every way a response can be malformed or cut
 * short.  The property that matters most: no proper prefix of a valid answer
 * parses, so a truncated response can never read as a commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/odata/dw_odata_multipart.h"
#include "tests/unit/common/dw_cunit.h"

#define CRLF "\r\n"

static struct dw_arena arena;

static dw_errcode parse(const char *ct, const char *body, struct dw_odata_response *r,
                        struct dw_error *err)
{
    dw_arena_reset(&arena);
    dw_error_clear(err);
    return dw_odata_multipart_parse(ct, body, strlen(body), &arena, r, err);
}

static void expect_bad(const char *ct, const char *body, const char *needle)
{
    struct dw_odata_response r;
    struct dw_error err;
    dw_errcode rc = parse(ct, body, &r, &err);

    CU_ASSERT_EQUAL(rc, DW_ERR_PROTOCOL);
    if (needle)
        DW_ASSERT_CONTAINS(err.message, needle);
}

/* What SAP CAP sends for a changeset of three successful requests. */
static const char cap_ok[] =
    "--batch_1" CRLF
    "content-type: multipart/mixed;boundary=changeset_dw5" CRLF
    CRLF
    "--changeset_dw5" CRLF
    "content-type: application/http" CRLF
    "content-transfer-encoding: binary" CRLF
    "content-id: 1" CRLF
    CRLF
    "HTTP/1.1 204 No Content" CRLF
    "odata-version: 4.0" CRLF
    "location: Orders(1)" CRLF
    CRLF
    CRLF
    "--changeset_dw5" CRLF
    "content-type: application/http" CRLF
    "content-transfer-encoding: binary" CRLF
    "content-id: 2" CRLF
    CRLF
    "HTTP/1.1 204 No Content" CRLF
    "odata-version: 4.0" CRLF
    CRLF
    CRLF
    "--changeset_dw5" CRLF
    "content-type: application/http" CRLF
    "content-transfer-encoding: binary" CRLF
    "content-id: 3" CRLF
    CRLF
    "HTTP/1.1 201 Created" CRLF
    "Content-Type: application/json" CRLF
    CRLF
    "{\"ID\":3}" CRLF
    "--changeset_dw5--" CRLF
    "--batch_1--" CRLF;

/* A failed changeset: one response, not wrapped in a changeset (OData 4.0). */
static const char cap_failed[] =
    "--b" CRLF
    "content-type: application/http" CRLF
    "content-transfer-encoding: binary" CRLF
    "content-id: 2" CRLF
    CRLF
    "HTTP/1.1 400 Bad Request" CRLF
    "odata-version: 4.0" CRLF
    "content-type: application/json; charset=utf-8" CRLF
    "content-length: 60" CRLF
    CRLF
    "{\"error\":{\"code\":\"NEGATIVE_AMOUNT\",\"message\":\"no --b here\"}}" CRLF
    "--b--" CRLF;

static void test_changeset_ok(void)
{
    struct dw_odata_response r;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(parse("multipart/mixed;boundary=batch_1", cap_ok, &r, &err), DW_OK);
    CU_ASSERT_TRUE(r.changeset);
    CU_ASSERT_EQUAL_FATAL(r.nparts, 3);
    CU_ASSERT_EQUAL(r.parts[0].status, 204);
    CU_ASSERT_EQUAL(r.parts[2].status, 201);
    DW_ASSERT_STREQ(r.parts[0].content_id, "1");
    DW_ASSERT_STREQ(r.parts[2].content_id, "3");
    CU_ASSERT_EQUAL(r.parts[0].body_len, 0);
    CU_ASSERT_EQUAL(r.parts[2].body_len, strlen("{\"ID\":3}"));
    CU_ASSERT_NSTRING_EQUAL(r.parts[2].body, "{\"ID\":3}", r.parts[2].body_len);
    DW_ASSERT_STREQ(r.parts[2].content_type, "application/json");
    CU_ASSERT_PTR_NULL(r.parts[0].retry_after);
}

static void test_failed_changeset(void)
{
    struct dw_odata_response r;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(parse("multipart/mixed; boundary=b", cap_failed, &r, &err), DW_OK);
    CU_ASSERT_FALSE(r.changeset);
    CU_ASSERT_EQUAL_FATAL(r.nparts, 1);
    CU_ASSERT_EQUAL(r.parts[0].status, 400);
    DW_ASSERT_STREQ(r.parts[0].content_id, "2");
    DW_ASSERT_STREQ(r.parts[0].content_type, "application/json; charset=utf-8");
    CU_ASSERT_NSTRING_EQUAL(r.parts[0].body, "{\"error\":", 9);
    CU_ASSERT_EQUAL(r.parts[0].body[r.parts[0].body_len - 1], '}');
}

static void test_quoted_boundaries_preamble_epilogue(void)
{
    static const char body[] =
        "This is a preamble, ignored." CRLF
        "--batch \"x\"" CRLF
        "Content-Type: multipart/mixed; boundary=\"cs 1\"" CRLF
        CRLF
        "--cs 1   " CRLF   /* transport padding */
        "Content-Type: application/http" CRLF
        "Content-ID: 7" CRLF
        CRLF
        "HTTP/1.1 204" CRLF
        CRLF
        CRLF
        "--cs 1--" CRLF
        "--batch \"x\"--" CRLF
        "an epilogue, ignored --batch \"x\"";
    struct dw_odata_response r;
    struct dw_error err;

    /* a boundary with a space must be quoted; a quote is not a bchar: "batch \"x\"" is invalid */
    CU_ASSERT_EQUAL(parse("multipart/mixed; boundary=\"batch \"x\"\"", body, &r, &err),
                    DW_ERR_PROTOCOL);
    {
        char fixed[sizeof(body)];
        char *p;

        memcpy(fixed, body, sizeof(body));
        while ((p = strstr(fixed, "batch \"x\"")) != NULL)
            memcpy(p, "batch_xyz", 9);
        CU_ASSERT_EQUAL_FATAL(parse("Multipart/Mixed ; charset=x; boundary=\"batch_xyz\"", fixed,
                                    &r, &err), DW_OK);
    }
    CU_ASSERT_TRUE(r.changeset);
    CU_ASSERT_EQUAL_FATAL(r.nparts, 1);
    CU_ASSERT_EQUAL(r.parts[0].status, 204);
    DW_ASSERT_STREQ(r.parts[0].content_id, "7");
}

static void test_inner_headers(void)
{
    static const char body[] =
        "--b" CRLF
        "Content-Type: application/http" CRLF
        CRLF
        "HTTP/1.1 429 Too Many Requests" CRLF
        "Retry-After: 7" CRLF
        "Content-ID: 3" CRLF
        CRLF
        "{}" CRLF
        "--b--";
    struct dw_odata_response r;
    struct dw_error err;

    CU_ASSERT_EQUAL_FATAL(parse("multipart/mixed; boundary=b", body, &r, &err), DW_OK);
    CU_ASSERT_EQUAL(r.parts[0].status, 429);
    DW_ASSERT_STREQ(r.parts[0].retry_after, "7");
    DW_ASSERT_STREQ(r.parts[0].content_id, "3");   /* from the response when the part has none */
}

static void test_boundary_param(void)
{
    char b[80];

    CU_ASSERT_TRUE(dw_odata_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof(b)));
    DW_ASSERT_STREQ(b, "abc");
    CU_ASSERT_TRUE(dw_odata_multipart_boundary("multipart/mixed;boundary=\"a b:c\";x=y", b,
                                               sizeof(b)));
    DW_ASSERT_STREQ(b, "a b:c");
    CU_ASSERT_TRUE(dw_odata_multipart_boundary("multipart/mixed; x=\"boundary=no\"; "
                                               "boundary=yes", b, sizeof(b)) &&
                   strcmp(b, "yes") == 0);
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/related; boundary=abc", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed; boundary=", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed; boundary=\"\"", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed; boundary=\"abc", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed; boundary=a!b", b, sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary("multipart/mixed; boundary=\"ends in space \"", b,
                                                sizeof(b)));
    CU_ASSERT_FALSE(dw_odata_multipart_boundary(NULL, b, sizeof(b)));
    {
        char ct[200];

        snprintf(ct, sizeof(ct), "multipart/mixed; boundary=%070d", 0);
        CU_ASSERT_TRUE(dw_odata_multipart_boundary(ct, b, sizeof(b)));
        snprintf(ct, sizeof(ct), "multipart/mixed; boundary=%071d", 0);
        CU_ASSERT_FALSE(dw_odata_multipart_boundary(ct, b, sizeof(b)));
    }
    CU_ASSERT_TRUE(dw_odata_media_type_is(" application/http ; x=1", "application/http"));
    CU_ASSERT_FALSE(dw_odata_media_type_is("application/https", "application/http"));
}

static void test_content_type_errors(void)
{
    expect_bad("application/json", cap_failed, "not multipart/mixed");
    expect_bad(NULL, cap_failed, "(none)");
    expect_bad("multipart/mixed", cap_failed, "valid boundary");
    expect_bad("multipart/mixed; boundary=other", cap_failed, "no delimiter line");
}

static void test_truncated(void)
{
    const char *ct = "multipart/mixed;boundary=batch_1";
    size_t full = strlen(cap_ok);
    /* everything up to the end of the outer close delimiter is needed */
    size_t need = (size_t) (strstr(cap_ok, "--batch_1--") - cap_ok) + strlen("--batch_1--");
    char *buf = malloc(full + 1);
    size_t accepted = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t n = 0; n < full; n++) {
        struct dw_odata_response r;
        struct dw_error err;

        memcpy(buf, cap_ok, n);
        buf[n] = '\0';
        dw_arena_reset(&arena);
        dw_error_clear(&err);
        if (dw_odata_multipart_parse(ct, buf, n, &arena, &r, &err) == DW_OK) {
            accepted++;
            CU_ASSERT(n >= need);
        } else {
            CU_ASSERT_EQUAL(err.code, DW_ERR_PROTOCOL);
        }
    }
    CU_ASSERT_EQUAL(accepted, full - need);   /* only cuts inside the epilogue */
    free(buf);
    expect_bad("multipart/mixed; boundary=b", "--b" CRLF "Content-Type: application/http" CRLF
               CRLF "HTTP/1.1 204 No Content" CRLF CRLF, "truncated");
}

static void test_line_endings(void)
{
    expect_bad("multipart/mixed; boundary=b",
               "--b\nContent-Type: application/http\n\nHTTP/1.1 204 No Content\n\n\n--b--\n",
               NULL);
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http\n" CRLF "HTTP/1.1 204" CRLF CRLF
               CRLF "--b--", "bare LF");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 204\r" CRLF CRLF
               CRLF "--b--", NULL);
}

static void test_boundary_inside_part(void)
{
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 400 Bad" CRLF
               CRLF "x" CRLF "--bogus" CRLF "--b--", "inside a part");
    expect_bad("multipart/mixed; boundary=b", "--bx" CRLF "--b--", NULL);
}

static void test_structure_errors(void)
{
    static const char two[] =
        "--b" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 204" CRLF CRLF CRLF
        "--b" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 204" CRLF CRLF CRLF
        "--b--";

    expect_bad("multipart/mixed; boundary=b", two, "2 parts");
    expect_bad("multipart/mixed; boundary=b", "", "no delimiter");
    expect_bad("multipart/mixed; boundary=b", "--b--" CRLF, "no parts");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: text/plain" CRLF CRLF "hello" CRLF "--b--",
               "neither a changeset");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: multipart/mixed; boundary=c" CRLF CRLF
               "--c" CRLF "Content-Type: text/plain" CRLF CRLF "HTTP/1.1 204" CRLF CRLF CRLF
               "--c--" CRLF "--b--", "not application/http");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: multipart/mixed; boundary=c" CRLF CRLF
               "--c" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 204" CRLF CRLF
               CRLF "--b--", "truncated");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF
               "Content-Transfer-Encoding: base64" CRLF CRLF "SFRUUC8xLjEgMjA0" CRLF "--b--",
               "base64");
}

static void test_status_line_errors(void)
{
    const char *bad[] = {"HTTP/2 204", "HTTP/1.1 20 OK", "HTTP/1.1 999 Nope", "HTTP/1.1 2x4 OK",
                         "HTTP/1.1 204No", "HTTP/1.2 204 OK", "FTP/1.1 204 OK", ""};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[256];

        snprintf(body, sizeof(body), "--b" CRLF "Content-Type: application/http" CRLF CRLF
                 "%s" CRLF CRLF CRLF "--b--", bad[i]);
        expect_bad("multipart/mixed; boundary=b", body, NULL);
    }
}

static void test_header_errors(void)
{
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF " folded" CRLF CRLF
               "HTTP/1.1 204" CRLF CRLF CRLF "--b--", "folds");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF "Content-ID: 1" CRLF
               "Content-ID: 2" CRLF CRLF "HTTP/1.1 204" CRLF CRLF CRLF "--b--", "repeats");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF "no colon here" CRLF CRLF
               "HTTP/1.1 204" CRLF CRLF CRLF "--b--", "no name");
    expect_bad("multipart/mixed; boundary=b",
               "--b" CRLF "Content-Type: application/http" CRLF CRLF "HTTP/1.1 204 No Content"
               CRLF "no end of headers" CRLF "--b--", "empty line");
}

/* Flip and drop bytes of a valid answer: it must never crash, and never succeed with garbage counts. */
static void test_mutations(void)
{
    size_t full = strlen(cap_ok);
    char *buf = malloc(full + 1);
    unsigned seed = 12345;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (int round = 0; round < 20000; round++) {
        struct dw_odata_response r;
        struct dw_error err;
        size_t at, n = full;

        memcpy(buf, cap_ok, full + 1);
        seed = seed * 1103515245 + 12345;
        at = (seed >> 8) % full;
        if (round % 3 == 0) {
            memmove(buf + at, buf + at + 1, full - at);   /* drop one byte */
            n--;
        } else {
            buf[at] = (char) (seed >> 20);
        }
        dw_arena_reset(&arena);
        dw_error_clear(&err);
        if (dw_odata_multipart_parse("multipart/mixed;boundary=batch_1", buf, n, &arena, &r,
                                     &err) == DW_OK) {
            CU_ASSERT(r.nparts >= 1 && r.nparts <= 3);
            for (size_t i = 0; i < r.nparts; i++)
                CU_ASSERT(r.parts[i].status >= 100 && r.parts[i].status <= 599);
        } else {
            CU_ASSERT(err.code == DW_ERR_PROTOCOL);
        }
    }
    free(buf);
}

static void test_many_parts(void)
{
    struct dw_buf b;
    struct dw_odata_response r;
    struct dw_error err;

    dw_buf_init(&b);
    dw_buf_puts(&b, "--b" CRLF "Content-Type: multipart/mixed; boundary=c" CRLF CRLF);
    for (int i = 1; i <= 1000; i++)
        dw_buf_printf(&b, "--c" CRLF "Content-Type: application/http" CRLF "Content-ID: %d" CRLF
                      CRLF "HTTP/1.1 204 No Content" CRLF CRLF CRLF, i);
    dw_buf_puts(&b, "--c--" CRLF "--b--" CRLF);
    CU_ASSERT_FALSE_FATAL(dw_buf_failed(&b));
    dw_arena_reset(&arena);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL_FATAL(dw_odata_multipart_parse("multipart/mixed; boundary=b", b.data, b.len,
                                                   &arena, &r, &err), DW_OK);
    CU_ASSERT_EQUAL(r.nparts, 1000);
    DW_ASSERT_STREQ(r.parts[999].content_id, "1000");
    dw_buf_cleanup(&b);
}

static const struct dw_cunit_test tests[] = {
    {"changeset of successes (SAP CAP's form)", test_changeset_ok},
    {"failed changeset: a single response", test_failed_changeset},
    {"quoted boundaries, padding, preamble, epilogue", test_quoted_boundaries_preamble_epilogue},
    {"Retry-After and Content-ID inside the response", test_inner_headers},
    {"boundary parameter", test_boundary_param},
    {"content type errors", test_content_type_errors},
    {"no truncated answer parses", test_truncated},
    {"CRLF only", test_line_endings},
    {"boundary inside a part", test_boundary_inside_part},
    {"structure errors", test_structure_errors},
    {"status line errors", test_status_line_errors},
    {"header errors", test_header_errors},
    {"mutated answers", test_mutations},
    {"1000 parts", test_many_parts},
};

int main(void)
{
    int rc;

    dw_arena_init(&arena, 4096);
    rc = dw_cunit_run("odata multipart", tests, sizeof(tests) / sizeof(tests[0]));
    dw_arena_cleanup(&arena);
    return rc;
}
